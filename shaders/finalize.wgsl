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

// The kinds of non-finite partials seen: bits K_PINF, K_NINF and K_NAN of
// the loss sum, the same shifted by 4 for the denominator. The sums add only
// finite values (a compiler may assume no inf or NaN); the kinds join at the
// store.
var<workgroup> seen_kinds: atomic<u32>;

fn kind_bit(k: u32) -> u32 {
    return select(1u << k, 0u, k == K_FIN);
}

// A sum of finite parts and the kinds the other terms had, as IEEE addition
// would have combined them.
fn total(v: f32, kinds: u32) -> Ext {
    var e = fin(v);
    for (var k = K_PINF; k <= K_NAN; k = k + 1u) {
        if ((kinds & (1u << k)) != 0u) {
            e = ext_add(e, ext_kind(k));
        }
    }
    return e;
}

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
    if (lid == 0u) {
        atomicStore(&seen_kinds, 0u);
    }
    workgroupBarrier();
    var level: array<vec2<f32>, 32>;
    var n = 0u;
    var kinds = 0u;
    for (var i = lid; i < params.count; i = i + WG) {
        let raw = partials[i];
        let lk = kind_of(raw.x);
        let dk = kind_of(raw.y);
        kinds = kinds | kind_bit(lk) | (kind_bit(dk) << 4u);
        var v = vec2(select(0.0, raw.x, lk == K_FIN), select(0.0, raw.y, dk == K_FIN));
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
    atomicOr(&seen_kinds, kinds);
    let r = reduce_wg(lid, vec4(sum, 0.0, 0.0));
    if (lid == 0u) {
        let all = atomicLoad(&seen_kinds);
        let x = total(r.x, all & 15u);
        let y = total(r.y, all >> 4u);
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
