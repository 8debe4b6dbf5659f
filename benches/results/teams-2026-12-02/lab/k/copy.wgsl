@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let block = (wid.x + wid.y * params.groups_x) * WG * 4u;
    for (var k = 0u; k < 4u; k = k + 1u) {
        let i = block + k * WG + lid;
        if (i < params.n / 4u) { out[i] = x[i]; } else if (i == 0xffffffffu) { out[0] = y[0]; }
    }
}
