@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) ng: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let total = ng.x * ng.y * WG;
    let n4 = params.n / 4u;
    let per = (n4 + total - 1u) / total;
    // 8 lanes share a contiguous run of 8 * per vectors.
    let team = group * (WG / 8u) + lid / 8u;
    let lane = lid % 8u;
    let start = team * per * 8u + lane;
    let end = min(n4, (team + 1u) * per * 8u);
    var acc = vec4<f32>(0.0);
    for (var j = start; j < end; j = j + 8u) {
        let d = x[j] - y[j];
        acc = acc + d * d;
    }
    let r = reduce_wg(lid, acc.x + acc.y + acc.z + acc.w); if (lid == 0u) { out[group] = vec4(r, 0.0, 0.0, 0.0); }
}
