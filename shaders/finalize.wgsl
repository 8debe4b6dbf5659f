// Second pass of every reduced loss: sums the per-workgroup (loss, denominator)
// partials and applies the reduction. Writes the value, and where the output
// has room the loss sum and the denominator after it (for mergeable partials).
//
// Params is `FinalizeParams` in src/gpu/plan.rs; the test
// gpu::contract::params_match_the_shaders checks that they agree.
struct Params {
    count: u32,
    // 0: sum; 1: sum / summed denominator; 2: sum / divisor.
    mode: u32,
    divisor: f32,
    _pad: u32,
}

@group(0) @binding(0) var<storage, read> partials: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read_write> result: array<f32>;
@group(0) @binding(2) var<uniform> params: Params;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    // Each thread adds count / 256 partials (256 for 2^27 elements). In one
    // running sum, alike partials round alike in every thread and the errors
    // add up instead of averaging out (1.2e-6 relative for 2^27 equal
    // losses), so the thread sums pairwise: level[l] holds the sum of 2^l
    // partials, merged like a binary counter's carries, and each partial
    // meets at most log2(count / 256) + 1 additions of like-sized sums.
    // (Compensated summation would be shorter, but Vulkan drivers such as
    // Mesa's fold its error terms away as algebraically zero.)
    var level: array<vec2<f32>, 32>;
    var n = 0u;
    var kinds = 0u;
    for (var i = lid; i < params.count; i = i + WG) {
        // Only finite values meet the sums (a compiler may assume no inf or
        // NaN); the kinds of the others join at the store.
        let part = split_pair(partials[i]);
        kinds = kinds | part.kinds;
        var v = part.v;
        var l = 0u;
        while (((n >> l) & 1u) == 1u) {
            v = level[l] + v;
            l = l + 1u;
        }
        level[l] = v;
        n = n + 1u;
    }
    var sum = vec2<f32>(0.0);
    for (var l = 0u; l < 32u; l = l + 1u) {
        if (((n >> l) & 1u) == 1u) {
            sum = sum + level[l];
        }
    }
    let rk = reduce_wg_kinds(lid, vec4(sum, 0.0, 0.0), kinds, 0u);
    let all = rk.kinds;
    let r = rk.v;
    if (lid == 0u) {
        let x = with_kinds(r.x, all & 15u);
        let y = with_kinds(r.y, all >> 4u);
        var v = x;
        if (params.mode == 1u) {
            v = ext_div(x, y);
        } else if (params.mode == 2u) {
            v = ext_div(x, ext(params.divisor));
        }
        result[0] = ext_f32(v);
        if (arrayLength(&result) >= 3u) {
            result[1] = ext_f32(x);
            result[2] = ext_f32(y);
        }
    }
}
