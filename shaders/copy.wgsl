// The streaming-bandwidth yardstick of `wgpu-loss bench`: a plain vec4 copy,
// the least work a kernel that reads and writes every byte once can do.
// Each workgroup copies one block of WG * ITEMS vec4s, its threads striding
// by WG so that neighbouring threads touch neighbouring addresses.
//
// Params is `CopyParams` in src/cli/bench.rs; the test
// gpu::contract::params_match_the_shaders checks that they agree.
struct Params {
    n4: u32,
    groups_x: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(2) var<uniform> params: Params;

// As src/cli/bench.rs sizes its grid (checked by the test
// gpu::contract::shared_constants_match_the_shaders).
const ITEMS: u32 = 4u;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let block = (wid.x + wid.y * params.groups_x) * WG * ITEMS;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = block + k * WG + lid;
        if (i < params.n4) {
            dst[i] = src[i];
        }
    }
}
