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

// Metal and DXC compile with fast math, and WGSL lets an implementation assume
// no inf or NaN: a comparison against an infinity may fold to false, 0 * inf
// to 0, and an operation whose operand is NaN may return anything. Kernels
// therefore never compute with a non-finite value. They classify each
// argument from its bits (`kind_of`, `is_fin`, `is_zero`: integer tests),
// carry the kind beside a finite value (`Ext`, whose operations implement
// IEEE arithmetic on the kinds), and turn the result into an IEEE value with
// `ext_f32` only where they store it. `kind_bits` is the one place that
// builds a NaN or an infinity; the test gpu::contract::nonfinite_values_only_at_stores
// keeps every other way out of the kernels, and lets `kind_bits`, `ext_f32`
// and `pair_value` appear only in stores.
//
// Arithmetic on finite values can still overflow; where that matters a
// result is classified from its bits (`ext`), which a compiler cannot fold.
const FLT_MAX: f32 = 3.4028235e38;
const K_FIN: u32 = 0u;
const K_PINF: u32 = 1u;
const K_NINF: u32 = 2u;
const K_NAN: u32 = 3u;

fn is_nan(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u; }
fn is_fin(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) < 0x7f800000u; }
// ±0 from the bits: hardware that flushes subnormals to zero compares a
// subnormal equal to 0, which IEEE arithmetic (and the reference) does not.
fn is_zero(x: f32) -> bool { return (bitcast<u32>(x) & 0x7fffffffu) == 0u; }
// The sign bit: true for -0 and negative subnormals too.
fn sign_bit(x: f32) -> bool { return (bitcast<u32>(x) >> 31u) != 0u; }

// The element type of a float input binding, as src/inputs/tensors.rs's
// `DType` and the `DTYPE_<binding>` overrides the host sets per binding
// (src/gpu/evaluator.rs). A binding of halves holds two per u32, the
// element with the lower index in the lower 16 bits (little-endian, as every
// backend stores them).
const DT_F32: u32 = 0u;
const DT_F16: u32 = 1u;
const DT_BF16: u32 = 2u;

// The f32 of an f16's bits (the low 16 of `h`), from integer operations only:
// the value is exact, an inf or NaN keeps its kind for `kind_of`, and an f16
// subnormal becomes an f32 normal, so no flush-to-zero mode can drop it.
fn f16_value(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        if (m == 0u) {
            return bitcast<f32>(sign);
        }
        // m * 2^-24, normalised: its top bit `t` (0..9) becomes the implicit one.
        let t = 31u - countLeadingZeros(m);
        return bitcast<f32>(sign | ((t + 103u) << 23u) | ((m << (23u - t)) & 0x7fffffu));
    }
    let exponent = select(e + 112u, 255u, e == 0x1fu);
    return bitcast<f32>(sign | (exponent << 23u) | (m << 13u));
}

// The word of a float binding that holds element `i`.
fn word_of(i: u32, dt: u32) -> u32 {
    return select(i >> 1u, i, dt == DT_F32);
}

// Element `i` of a float binding from its word `w` (see `word_of`).
fn element(w: u32, i: u32, dt: u32) -> f32 {
    let h = (w >> ((i & 1u) * 16u)) & 0xffffu;
    if (dt == DT_F32) {
        return bitcast<f32>(w);
    }
    if (dt == DT_BF16) {
        return bitcast<f32>(h << 16u);
    }
    return f16_value(h);
}

fn kind_of(x: f32) -> u32 {
    let b = bitcast<u32>(x);
    let e = b & 0x7fffffffu;
    let inf = select(K_PINF, K_NINF, (b >> 31u) != 0u);
    return select(select(inf, K_NAN, e > 0x7f800000u), K_FIN, e < 0x7f800000u);
}

// An extended real: `v` when k is K_FIN, else the kind alone (v = ±0, which
// adds nothing to a sum of finite parts). The operations below are written
// with selects, not branches: kernels inline many of them, and a shader
// compiler's time grows with the branches far more than with straight code.
// Each computes on the finite parts only (those of a non-finite operand are
// 0), so that no operation ever sees an infinity or NaN.
struct Ext {
    v: f32,
    k: u32,
}

fn fin(v: f32) -> Ext { return Ext(v, K_FIN); }
fn ext_kind(k: u32) -> Ext { return Ext(0.0, k); }

// v of kind k, or the kind alone; a "finite" v that overflowed is an
// infinity, from its bits.
fn ext_of(v: f32, k: u32) -> Ext {
    let kv = select(k, kind_of(v), k == K_FIN);
    return Ext(select(0.0, v, kv == K_FIN), kv);
}

// A computed or loaded value, classified from its bits.
fn ext(x: f32) -> Ext { return ext_of(x, K_FIN); }

// c ? b : a, for extended reals.
fn ext_pick(a: Ext, b: Ext, c: bool) -> Ext {
    return Ext(select(a.v, b.v, c), select(a.k, b.k, c));
}

fn ext_neg(e: Ext) -> Ext {
    return Ext(-e.v, select(select(e.k, K_PINF, e.k == K_NINF), K_NINF, e.k == K_PINF));
}

fn ext_abs(e: Ext) -> Ext {
    return Ext(abs(e.v), select(e.k, K_PINF, e.k == K_NINF));
}

// IEEE addition: inf - inf and anything with NaN are NaN.
fn ext_add(p: Ext, q: Ext) -> Ext {
    let pf = p.k == K_FIN;
    let qf = q.k == K_FIN;
    let nan = p.k == K_NAN || q.k == K_NAN || (!pf && !qf && p.k != q.k);
    let k = select(select(p.k, q.k, pf), K_FIN, pf && qf);
    return ext_of(p.v + q.v, select(k, K_NAN, nan));
}

fn ext_sub(p: Ext, q: Ext) -> Ext { return ext_add(p, ext_neg(q)); }

// The sign of an extended real, from the bits for a finite one.
fn ext_neg_sign(e: Ext) -> bool {
    return select(sign_bit(e.v), e.k == K_NINF, e.k != K_FIN);
}

// IEEE multiplication: 0 * inf and anything with NaN are NaN.
fn ext_mul(p: Ext, q: Ext) -> Ext {
    let pf = p.k == K_FIN;
    let qf = q.k == K_FIN;
    let zero = (pf && is_zero(p.v)) || (qf && is_zero(q.v));
    let nan = p.k == K_NAN || q.k == K_NAN || (!(pf && qf) && zero);
    let inf = select(K_PINF, K_NINF, ext_neg_sign(p) != ext_neg_sign(q));
    let k = select(select(inf, K_FIN, pf && qf), K_NAN, nan);
    return ext_of(p.v * q.v, k);
}

// s / d, IEEE division except that a zero denominator counts as +0: 0 / 0 is
// NaN and s / 0 an infinity of the sign of s. No caller divides by a -0.
fn ext_div(s: Ext, d: Ext) -> Ext {
    let sf = s.k == K_FIN;
    let df = d.k == K_FIN;
    let dz = df && is_zero(d.v);
    let nan = s.k == K_NAN || d.k == K_NAN || (dz && sf && is_zero(s.v)) || (!sf && !df);
    let inf = select(K_PINF, K_NINF, select(ext_neg_sign(s) != sign_bit(d.v), ext_neg_sign(s), dz));
    // Finite by finite nonzero: the quotient; an infinite s: inf; an
    // infinite d (s finite): 0; a zero d: inf.
    var k = select(inf, K_FIN, sf);
    k = select(k, K_FIN, !df);
    k = select(k, inf, dz);
    // A zero s gives 0 without the division, which hardware that flushes
    // subnormals to zero would make 0 / 0 for a subnormal d.
    let sz = sf && is_zero(s.v);
    let q = s.v / select(d.v, 1.0, !df || dz || sz);
    return ext_of(select(0.0, q, sf && df && !dz), select(k, K_NAN, nan));
}

// p < q, false when either is NaN.
fn ext_lt(p: Ext, q: Ext) -> bool {
    let nan = p.k == K_NAN || q.k == K_NAN;
    let kinds = (p.k == K_NINF && q.k != K_NINF) || (q.k == K_PINF && p.k != K_PINF);
    return !nan && select(kinds, p.v < q.v, p.k == K_FIN && q.k == K_FIN);
}

// p == q, false when either is NaN.
fn ext_eq(p: Ext, q: Ext) -> bool {
    let nan = p.k == K_NAN || q.k == K_NAN;
    return !nan && select(p.k == q.k, p.v == q.v, p.k == K_FIN && q.k == K_FIN);
}

fn ext_le(p: Ext, q: Ext) -> bool { return ext_lt(p, q) || ext_eq(p, q); }

// torch.maximum: NaN if either is.
fn ext_max(p: Ext, q: Ext) -> Ext {
    let nan = p.k == K_NAN || q.k == K_NAN;
    return ext_pick(ext_pick(p, q, ext_lt(p, q)), ext_kind(K_NAN), nan);
}

// torch.minimum: NaN if either is.
fn ext_min(p: Ext, q: Ext) -> Ext {
    let nan = p.k == K_NAN || q.k == K_NAN;
    return ext_pick(ext_pick(p, q, ext_lt(q, p)), ext_kind(K_NAN), nan);
}

// torch.clamp_min for a finite bound: NaN stays NaN.
fn ext_clamp_min(e: Ext, lo: f32) -> Ext {
    return ext_pick(e, fin(lo), ext_lt(e, fin(lo)));
}

// sign with sign(±0) = 0 and sign(NaN) = 0, as torch's sign; a subnormal
// keeps its sign.
fn ext_sign(e: Ext) -> f32 {
    let zero = e.k == K_NAN || (e.k == K_FIN && is_zero(e.v));
    return select(select(1.0, -1.0, ext_neg_sign(e)), 0.0, zero);
}

// e^x: 0 at -inf.
fn ext_exp(e: Ext) -> Ext {
    let v = exp(e.v);
    return ext_of(select(0.0, v, e.k == K_FIN), select(e.k, K_FIN, e.k == K_NINF));
}

// ln with IEEE's answers for what `ln` leaves out: -inf at ±0 (from the
// bits), NaN below 0 and at -inf.
fn ext_ln(e: Ext) -> Ext {
    let zero = e.k == K_FIN && is_zero(e.v);
    let pos = e.k == K_FIN && !zero && !sign_bit(e.v);
    let v = ln(select(1.0, e.v, pos));
    var k = select(e.k, K_NAN, e.k == K_NINF || (e.k == K_FIN && !pos));
    k = select(k, K_NINF, zero);
    return ext_of(v, k);
}

// log1p with IEEE's answers where `log1p` leaves them out: -inf at -1, NaN
// below -1 and at -inf.
fn ext_log1p(e: Ext) -> Ext {
    let ok = e.k == K_FIN && e.v > -1.0;
    let v = log1p(select(0.0, e.v, ok));
    var k = select(e.k, K_NAN, e.k == K_NINF || (e.k == K_FIN && !ok));
    k = select(k, K_NINF, e.k == K_FIN && e.v == -1.0);
    return ext_of(v, k);
}

// log(1 + e^z): +inf at +inf, 0 at -inf.
fn ext_softplus(z: Ext) -> Ext {
    let v = softplus(z.v);
    return ext_of(select(0.0, v, z.k == K_FIN), select(z.k, K_FIN, z.k == K_NINF));
}

// u^g as C's pow gives it (the twin's powf), for a finite g: 1 for g = 0
// whatever u is, NaN for u < 0 and a g that is not an integer.
fn ext_pow(u: Ext, g: f32) -> Ext {
    let whole = fract(g) == 0.0;
    let odd = whole && fract(0.5 * g) != 0.0;
    let zero = u.k == K_FIN && is_zero(u.v);
    let neg = ext_neg_sign(u);
    let m = ext(pow_gamma(select(1.0, abs(u.v), u.k == K_FIN && !zero), g));
    // |u|^g is +inf for an infinite u and g > 0, or for u = 0 and g < 0; else
    // 0. A negative u (-inf, -0) keeps its sign for odd g.
    let big = (u.k != K_FIN) == (g > 0.0);
    let s = odd && neg;
    var r = ext_pick(fin(select(0.0, -0.0, s)), ext_kind(select(K_PINF, K_NINF, s)), big);
    // A finite nonzero u: |u|^g, negated for a negative u and odd g, NaN for
    // a negative u and a g that is not an integer.
    let m_signed = ext_pick(m, ext_neg(m), s);
    r = ext_pick(r, ext_pick(m_signed, ext_kind(K_NAN), neg && !whole), u.k == K_FIN && !zero);
    r = ext_pick(r, u, u.k == K_NAN);
    return ext_pick(r, fin(1.0), g == 0.0);
}

// 1 / (1 + e^-z): 1 at +inf, 0 at -inf.
fn ext_sigmoid(e: Ext) -> Ext {
    let v = select(sigmoid(e.v), select(0.0, 1.0, e.k == K_PINF), e.k == K_PINF || e.k == K_NINF);
    return Ext(v, select(K_FIN, K_NAN, e.k == K_NAN));
}

// The one place a NaN or an infinity is built: the IEEE value of a kind, for
// a store.
fn kind_bits(k: u32) -> f32 {
    return bitcast<f32>(select(select(0x7fc00000u, 0xff800000u, k == K_NINF), 0x7f800000u, k == K_PINF));
}

// An extended real as the f32 a kernel stores.
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

// log(1 + u) for finite u > -1. At u = -1 it gives -FLT_MAX, a finite floor,
// not -inf: callers that can meet it classify the argument first.
fn log1p(u: f32) -> f32 {
    let w = 1.0 + u;
    if (w >= 0.5 && w <= 2.0) {
        return log1p_series(u);
    }
    if (w == 0.0) {
        return -FLT_MAX;
    }
    return log(w);
}

// ln x for finite x > 0, subnormals included (`ext_ln` classifies the rest).
// At ±0 it gives -FLT_MAX, a finite floor, not -inf: a caller that can pass
// 0 (pairs.wgsl's `ln_acc` for the unused aux value of a zero norm) gets a
// finite value whose exponential underflows to 0, as it would from -inf.
fn ln(x: f32) -> f32 {
    if (x >= 0.5 && x <= 2.0) {
        // x - 1 is exact here (Sterbenz).
        return log1p_series(x - 1.0);
    }
    // A positive subnormal, read from its bits: x = b 2^-149 for the integer
    // b < 2^23, exact as f32. Hardware that flushes subnormals would see 0 in
    // any comparison or product of x itself, and some built-in logs
    // mishandle them. One built-in log for both, chosen by selects: a CPU
    // adapter runs both sides of a branch.
    let b = bitcast<u32>(x) & 0x7fffffffu;
    let sub = b < 0x00800000u;
    let l = log(select(x, f32(b), sub)) - select(0.0, SUBNORMAL_LN, sub);
    return select(l, -FLT_MAX, b == 0u);
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

// For finite z. Below z = -80, 1 + e^-z rounds to e^-z (it does from z = -17
// on), so the value is e^z, taken directly: e^-z would overflow past -88.7
// and leave 1 / inf.
fn sigmoid(z: f32) -> f32 {
    if (z < -80.0) {
        return exp(z);
    }
    return 1.0 / (1.0 + exp(-z));
}

// u^gamma for u >= 0, with 0^0 = 1 and exact small integer powers.
fn pow_gamma(u: f32, gamma: f32) -> f32 {
    if (gamma == 0.0) { return 1.0; }
    if (gamma == 1.0) { return u; }
    if (gamma == 2.0) { return u * u; }
    if (u == 0.0) { return 0.0; }
    return exp2(gamma * log2(u));
}

var<workgroup> red: array<vec4<f32>, WG>;
var<workgroup> red_lanes: array<vec4<f32>, SUM_LANES>;

// The sum of `red` once every invocation has stored its value there and
// passed a barrier: SUM_LANES invocations each add WG / SUM_LANES values
// (neighbouring lanes neighbouring slots, which shared-memory banks serve at
// once), and every invocation adds their SUM_LANES sums, read at addresses
// common to all. Two barriers where a halving tree takes log2(WG) = 8: on a
// CPU adapter (lavapipe) each barrier switches between all of a workgroup's
// SIMD groups, and the tree cost about 10 us per workgroup there.
const SUM_LANES: u32 = 16u;

fn sum_red(lid: u32) -> vec4<f32> {
    if (lid < SUM_LANES) {
        var t = vec4<f32>(0.0);
        for (var k = lid; k < WG; k = k + SUM_LANES) {
            t = t + red[k];
        }
        red_lanes[lid] = t;
    }
    workgroupBarrier();
    var r = vec4<f32>(0.0);
    for (var k = 0u; k < SUM_LANES; k = k + 1u) {
        r = r + red_lanes[k];
    }
    return r;
}

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

// Two slots for `reduce_wg_kinds`.
var<workgroup> wg_kind_slots: array<atomic<u32>, 2>;

struct Reduced {
    v: vec4<f32>,
    kinds: u32,
}

// `reduce_wg` of the finite parts, and every invocation's kinds or-ed, in
// the same barriers; a single call passes n = 0, calls in a loop count n
// from 0. Call n ors into slot n % 2 after its
// first barrier; before that barrier invocation 0 clears the other slot (and,
// in call 0, this one: workgroup memory is not zeroed). Every invocation read
// the other slot in call n - 1, before that call's last barrier, and none ors
// into it before call n + 1's first barrier. Call from uniform control flow.
fn reduce_wg_kinds(lid: u32, v: vec4<f32>, kinds: u32, n: u32) -> Reduced {
    let slot = n & 1u;
    if (lid == 0u) {
        atomicStore(&wg_kind_slots[slot ^ 1u], 0u);
        if (n == 0u) {
            atomicStore(&wg_kind_slots[slot], 0u);
        }
    }
    red[lid] = v;
    workgroupBarrier();
    atomicOr(&wg_kind_slots[slot], kinds);
    let total = sum_red(lid);
    let r = Reduced(total, atomicLoad(&wg_kind_slots[slot]));
    workgroupBarrier();
    return r;
}

// A reduced (loss, denominator) pair with its kinds, as IEEE values to store.
fn pair_value(sum: vec2<f32>, kinds: u32) -> vec2<f32> {
    return vec2(ext_f32(with_kinds(sum.x, kinds & 15u)), ext_f32(with_kinds(sum.y, kinds >> 4u)));
}

// Sum over the workgroup; every invocation gets the total. Call from
// uniform control flow.
fn reduce_wg(lid: u32, v: vec4<f32>) -> vec4<f32> {
    red[lid] = v;
    workgroupBarrier();
    let r = sum_red(lid);
    workgroupBarrier();
    return r;
}
