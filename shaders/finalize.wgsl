// Second pass of every reduced loss: sums the per-workgroup (loss, denominator)
// partials and applies the reduction. Writes the value, and where the output
// has room the loss sum and the denominator after it (for mergeable partials).
//
// Params must be kept in sync with `FinalizeParams` in src/gpu/mod.rs.
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
    var acc = vec4<f32>(0.0);
    for (var i = lid; i < params.count; i = i + WG) {
        acc = acc + vec4(partials[i], 0.0, 0.0);
    }
    let r = reduce_wg(lid, acc);
    if (lid == 0u) {
        var v = r.x;
        if (params.mode == 1u) {
            v = safe_div(r.x, r.y);
        } else if (params.mode == 2u) {
            v = safe_div(r.x, params.divisor);
        }
        result[0] = v;
        if (arrayLength(&result) >= 3u) {
            result[1] = r.x;
            result[2] = r.y;
        }
    }
}
