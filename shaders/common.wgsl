// Shared by every kernel: workgroup size, the workgroup reduction, and the
// elementary functions WGSL lacks or gives too little accuracy for.
//
// Vulkan lets `log` carry an absolute error of 2^-21 on [0.5, 2], which is a
// large relative error for results near 0 (log of a probability near 1, a
// log-sum-exp dominated by one class). `ln` and `log1p` therefore use a series
// there and the built-in only outside that range.

// Invocations per workgroup, `WG` in src/gpu/plan.rs; every kernel's
// @workgroup_size repeats it (both checked by the test
// gpu::contract::shared_constants_match_the_shaders).
const WG: u32 = 256u;
const LN2: f32 = 0.6931471805599453;
// 149 ln 2: ln x = ln b - 149 ln 2 for a subnormal x of bits b.
const SUBNORMAL_LN: f32 = 103.27892990343184;

// A run-time 1.0/0.0 may be 0 on some implementations: build sentinels from bits.
fn inf() -> f32 { return bitcast<f32>(0x7f800000u); }
fn nan() -> f32 { return bitcast<f32>(0x7fc00000u); }
fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }

// Metal and DXC compile with fast math, and WGSL lets an implementation assume
// no inf or NaN: a comparison against inf() may fold to false and 0 * inf to
// 0. Kernels therefore never compute with non-finite values. They classify an
// input from its bits, carry the kind beside a finite value (`Ext`), and turn
// it back into an IEEE value with `ext_f32` only when storing a result. The
// test gpu::contract::no_float_tests_of_inf_or_nan keeps comparisons against
// inf() and nan() out of the kernels.
const FLT_MAX: f32 = 3.4028235e38;
const K_FIN: u32 = 0u;
const K_PINF: u32 = 1u;
const K_NINF: u32 = 2u;
const K_NAN: u32 = 3u;

fn kind_of(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let e = b & 0x7fffffffu;
    if (e < 0x7f800000u) {
        return K_FIN;
    }
    if (e > 0x7f800000u) {
        return K_NAN;
    }
    return select(K_PINF, K_NINF, (b >> 31u) != 0u);
}

// An extended real: `v` when k is K_FIN, else the kind alone (v = 0).
struct Ext {
    v: f32,
    k: u32,
}

fn fin(v: f32) -> Ext { return Ext(v, K_FIN); }
fn ext_kind(k: u32) -> Ext { return Ext(0.0, k); }

fn ext(x: f32) -> Ext {
    let k = kind_of(x);
    return Ext(select(0.0, x, k == K_FIN), k);
}

// IEEE addition: inf - inf and anything with NaN are NaN.
fn ext_add(p: Ext, q: Ext) -> Ext {
    if (p.k == K_NAN || q.k == K_NAN || (p.k != K_FIN && q.k != K_FIN && p.k != q.k)) {
        return ext_kind(K_NAN);
    }
    if (p.k != K_FIN) { return p; }
    if (q.k != K_FIN) { return q; }
    return fin(p.v + q.v);
}

fn ext_neg_sign(e: Ext) -> bool {
    return select(e.v < 0.0, e.k == K_NINF, e.k != K_FIN);
}

// IEEE multiplication: 0 * inf and anything with NaN are NaN.
fn ext_mul(p: Ext, q: Ext) -> Ext {
    if (p.k == K_NAN || q.k == K_NAN) {
        return ext_kind(K_NAN);
    }
    if (p.k == K_FIN && q.k == K_FIN) {
        return fin(p.v * q.v);
    }
    if ((p.k == K_FIN && p.v == 0.0) || (q.k == K_FIN && q.v == 0.0)) {
        return ext_kind(K_NAN);
    }
    return ext_kind(select(K_PINF, K_NINF, ext_neg_sign(p) != ext_neg_sign(q)));
}

// s / d as `safe_div` gives it, on extended reals: an empty or zero-weight
// denominator gives NaN for 0 / 0 and an infinity of the sign of s otherwise.
fn ext_div(s: Ext, d: Ext) -> Ext {
    if (s.k == K_NAN || d.k == K_NAN) {
        return ext_kind(K_NAN);
    }
    if (d.k == K_FIN && d.v == 0.0) {
        if (s.k == K_FIN && s.v == 0.0) {
            return ext_kind(K_NAN);
        }
        return ext_kind(select(K_PINF, K_NINF, ext_neg_sign(s)));
    }
    if (d.k != K_FIN) {
        if (s.k != K_FIN) {
            return ext_kind(K_NAN);
        }
        return fin(0.0);
    }
    if (s.k != K_FIN) {
        return ext_kind(select(K_PINF, K_NINF, ext_neg_sign(s) != (d.v < 0.0)));
    }
    return fin(s.v / d.v);
}

// The IEEE value of a kind, built from bits for a store.
fn kind_bits(k: u32) -> f32 {
    return bitcast<f32>(select(select(0x7fc00000u, 0xff800000u, k == K_NINF), 0x7f800000u, k == K_PINF));
}

fn ext_f32(e: Ext) -> f32 {
    return select(e.v, kind_bits(e.k), e.k != K_FIN);
}

// Clamps from below without turning NaN into the bound. WGSL's max may drop
// NaN, and a compiler that assumes no NaN may turn a select of a comparison
// into max (Mesa's GL path does): the bit test keeps NaN either way.
fn clamp_min(v: f32, lo: f32) -> f32 { return select(select(v, lo, v < lo), v, is_nan(v)); }

// log(1 + u) for u in [-1/3, 1] via 2 atanh(s), s = u / (2 + u), |s| <= 1/3.
fn log1p_series(u: f32) -> f32 {
    let s = u / (2.0 + u);
    let s2 = s * s;
    var p = 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    return 2.0 * s * p;
}

fn log1p(u: f32) -> f32 {
    let w = 1.0 + u;
    if (w >= 0.5 && w <= 2.0) {
        return log1p_series(u);
    }
    if (w == 0.0) {
        return -inf();
    }
    return log(w);
}

fn ln(x: f32) -> f32 {
    if (x >= 0.5 && x <= 2.0) {
        // x - 1 is exact here (Sterbenz).
        return log1p_series(x - 1.0);
    }
    let b = bitcast<u32>(x);
    if (b < 0x00800000u) {
        if (b == 0u) {
            return -inf();
        }
        // A positive subnormal, read from its bits: x = b 2^-149 for the
        // integer b < 2^23, exact as f32. Hardware that flushes subnormals
        // would see 0 in any comparison or product of x itself, and some
        // built-in logs mishandle them.
        return log(f32(b)) - SUBNORMAL_LN;
    }
    // -0 gives -inf like +0; negative values give NaN through log.
    if (b == 0x80000000u) {
        return -inf();
    }
    return log(x);
}

// exp(x) - 1 without cancellation for small |x|.
fn expm1(x: f32) -> f32 {
    if (abs(x) < 0.25) {
        var p = 1.0 / 40320.0;
        p = p * x + 1.0 / 5040.0;
        p = p * x + 1.0 / 720.0;
        p = p * x + 1.0 / 120.0;
        p = p * x + 1.0 / 24.0;
        p = p * x + 1.0 / 6.0;
        p = p * x + 0.5;
        p = p * x + 1.0;
        return x * p;
    }
    return exp(x) - 1.0;
}

// log(1 + e^z), never overflowing.
fn softplus(z: f32) -> f32 {
    return max(z, 0.0) + log1p(exp(-abs(z)));
}

fn sigmoid(z: f32) -> f32 {
    return 1.0 / (1.0 + exp(-z));
}

// u^gamma for u in [0, 1], with 0^0 = 1 and exact small integer powers.
fn pow_gamma(u: f32, gamma: f32) -> f32 {
    if (gamma == 0.0) { return 1.0; }
    if (gamma == 1.0) { return u; }
    if (gamma == 2.0) { return u * u; }
    if (u == 0.0) { return 0.0; }
    return exp2(gamma * log2(u));
}

// s / d with the reference's answers for an empty or zero-weight denominator.
fn safe_div(s: f32, d: f32) -> f32 {
    if (d == 0.0) {
        if (s == 0.0 || is_nan(s)) { return nan(); }
        return select(-inf(), inf(), s > 0.0);
    }
    return s / d;
}

var<workgroup> red: array<vec4<f32>, WG>;

// The kinds of the non-finite values an invocation met, one bit per kind
// (1 << K_PINF, ...); `split_pair` puts a second value's 4 bits higher.
fn kind_flag(k: u32) -> u32 {
    return select(1u << k, 0u, k == K_FIN);
}

// A sum of finite parts and the kinds its other terms had, as IEEE addition
// would have combined them.
fn with_kinds(v: f32, kinds: u32) -> Ext {
    var e = fin(v);
    for (var k = K_PINF; k <= K_NAN; k = k + 1u) {
        if ((kinds & (1u << k)) != 0u) {
            e = ext_add(e, ext_kind(k));
        }
    }
    return e;
}

// The finite parts of (loss, denominator), for a sum that must not meet inf
// or NaN, and their kinds.
struct Split {
    v: vec2<f32>,
    kinds: u32,
}

fn split_pair(v: vec2<f32>) -> Split {
    let lk = kind_of(v.x);
    let dk = kind_of(v.y);
    let f = vec2(select(0.0, v.x, lk == K_FIN), select(0.0, v.y, dk == K_FIN));
    return Split(f, kind_flag(lk) | (kind_flag(dk) << 4u));
}

var<workgroup> wg_kinds: atomic<u32>;

// Every invocation's kinds or-ed together. Call from uniform control flow,
// once per dispatch.
fn reduce_kinds(lid: u32, kinds: u32) -> u32 {
    if (lid == 0u) {
        atomicStore(&wg_kinds, 0u);
    }
    workgroupBarrier();
    atomicOr(&wg_kinds, kinds);
    workgroupBarrier();
    return atomicLoad(&wg_kinds);
}

// A reduced (loss, denominator) pair with its kinds, as IEEE values to store.
fn pair_value(sum: vec2<f32>, kinds: u32) -> vec2<f32> {
    return vec2(ext_f32(with_kinds(sum.x, kinds & 15u)), ext_f32(with_kinds(sum.y, kinds >> 4u)));
}

// Tree sum over the workgroup; every invocation gets the total. Call from
// uniform control flow.
fn reduce_wg(lid: u32, v: vec4<f32>) -> vec4<f32> {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            red[lid] = red[lid] + red[lid + s];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}
