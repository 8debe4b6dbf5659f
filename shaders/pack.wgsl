// Gradients written in half precision: the f32 values a kernel wrote,
// rounded once (to nearest, ties to even) to f16 or bf16 and packed two to a
// word. The rounding is integer arithmetic on the bits, so no fast-math or
// flush-to-zero mode changes it: infinities and NaN keep their kind, f16
// subnormals come out as IEEE rounds them.
//
// Params is `PackParams` in src/gpu/plan.rs; the test
// gpu::contract::params_match_the_shaders checks that they agree.
struct Params {
    // Values in the slice.
    n: u32,
    groups_x: u32,
    // DT_F16 or DT_BF16.
    dtype: u32,
    _pad: u32,
}

// f32 values (as bits), and the destination's words.
@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;

// The f16 nearest to the f32 with bits `b` (ties to even).
fn f16_bits(b: u32) -> u32 {
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7fffffffu;
    if (a > 0x7f800000u) {
        // NaN: a quiet one.
        return sign | 0x7e00u;
    }
    if (a >= 0x477ff000u) {
        // At or beyond halfway between 65504 and 2^16: infinity.
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        // An f16 normal: rebias the exponent (127 - 15 = 112), round off 13 bits.
        let r = a - 0x38000000u;
        return sign | ((r + 0xfffu + ((r >> 13u) & 1u)) >> 13u);
    }
    if (a <= 0x33000000u) {
        // At most 2^-25, half the smallest subnormal: 0 (a tie goes to even 0).
        return sign;
    }
    // A subnormal: the significand (implicit bit included) in units of 2^-24.
    let shift = 126u - (a >> 23u);
    let m = (a & 0x7fffffu) | 0x800000u;
    let q = m >> shift;
    let rest = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    let up = rest > half || (rest == half && (q & 1u) == 1u);
    return sign | (q + select(0u, 1u, up));
}

// The bf16 nearest to the f32 with bits `b` (ties to even).
fn bf16_bits(b: u32) -> u32 {
    if ((b & 0x7fffffffu) > 0x7f800000u) {
        return (b >> 16u) | 0x40u;
    }
    return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

fn narrow(b: u32) -> u32 {
    if (params.dtype == DT_BF16) {
        return bf16_bits(b);
    }
    return f16_bits(b);
}

// Elements per thread, as src/gpu/evaluator.rs sizes the grid (checked by
// the test gpu::contract::shared_constants_match_the_shaders).
const ITEMS: u32 = 4u;

// Word k of the slice holds values 2k (low half) and 2k + 1. The last word
// of an odd count keeps its upper half: those bytes are not the slice's.
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let block = (wid.x + wid.y * params.groups_x) * WG * ITEMS;
    let words = (params.n + 1u) / 2u;
    for (var j = 0u; j < ITEMS; j = j + 1u) {
        let k = block + j * WG + lid;
        if (k < words) {
            let lo = narrow(src[2u * k]);
            var hi = dst[k] >> 16u;
            if (2u * k + 1u < params.n) {
                hi = narrow(src[2u * k + 1u]);
            }
            dst[k] = lo | (hi << 16u);
        }
    }
}
