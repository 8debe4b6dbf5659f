// Row-vector losses over (rows, dim): the loss math, shared by two drivers
// that the host appends (src/gpu/pairs.rs). The invocations that share a
// row, its `lanes`, walk it with a stride of `lanes` (neighbouring lanes read
// neighbouring values: coalesced on a GPU, a vector load on llvmpipe) and
// join their sums with `row_merge`, which each driver defines:
// - pairs_lanes.wgsl: `params.lanes` neighbouring invocations of a workgroup
//   per row, joined in shared memory (1: a thread per row, WG: a workgroup
//   per row, between: several rows per workgroup);
// - pairs_subgroup.wgsl: a subgroup per row, joined by subgroup operations.
// Every lane gets the row's totals and computes the row's loss; lane 0 writes
// the item (`write_items`) or adds it to the workgroup's (loss, 1) partial
// for finalize.wgsl. A dispatch covers one slice of whole rows (inputs may be
// longer than one binding); every partial goes to `partial_base + group` in
// the scratch shared by all slices.
//
// Row sums are blocked pairwise sums (`Pw`) within a lane, then a tree over
// the lanes: 1 - cos and margin + d_ap - d_an are small differences of large
// quantities, so the sums must lose far less than a plain f32 sum over rows
// of thousands of elements. Only the cosine gradient keeps compensated sums
// (see `Acc`), joined across lanes with the same compensation.
//
// With GRAD the lanes then walk their row once more and write the gradient
// of every tensor, the row's upstream scaled by the reduction times the row's
// derivative (rows are independent: no second pass).
//
// Params is `PairsParams` in src/gpu/pairs.rs; the test
// gpu::contract::params_match_the_shaders checks that they agree.
struct Params {
    rows: u32,
    dim: u32,
    write_items: u32,
    groups_x: u32,
    // cosine_embedding: labels given; triplet_margin: swap.
    flag: u32,
    // triplet_margin: 0 general p, 1 p = 1, 2 p = 2, 3 p = inf.
    norm: u32,
    margin: f32,
    p: f32,
    eps: f32,
    // Values bound before the slice's first row: bindings start 256-byte
    // aligned, slices need not (`skip` in the row tensors and gradients,
    // `row_skip` in the labels, the items and a per-item upstream).
    skip: u32,
    row_skip: u32,
    partial_base: u32,
    // What a reduced call divides its upstream by: the row count for mean, 1
    // for sum.
    divisor: f32,
    // cosine_embedding's 1e-12, as a value the compiler cannot fold into the
    // compensated sums (it simplifies (s - (s + c)) + c to 0 for a constant c).
    cos_eps: f32,
    // Invocations per row of pairs_lanes.wgsl, a power of two up to WG
    // (the subgroup driver reads its subgroup's size instead).
    lanes: u32,
    _pad: u32,
}

// cosine_embedding: input = x1, second = x2, third = labels (one per row).
// triplet_margin: input = anchor, second = positive, third = negative.
// Each as words of its dtype (`element`, common.wgsl), which the
// `DTYPE_<binding>` override of each names.
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read> second: array<u32>;
@group(0) @binding(2) var<storage, read> third: array<u32>;
// One value per row of the slice (from `row_skip`), or a single one for all.
@group(0) @binding(3) var<storage, read> upstream: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The gradients of input, second and third, in their layout (from `skip`).
@group(0) @binding(5) var<storage, read_write> grad_input: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad_second: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_third: array<f32>;
@group(0) @binding(8) var<uniform> params: Params;

override GRAD: bool = false;
override DTYPE_0: u32 = DT_F32;
override DTYPE_1: u32 = DT_F32;
override DTYPE_2: u32 = DT_F32;

fn ld_input(i: u32) -> f32 { return element(input[word_of(i, DTYPE_0)], i, DTYPE_0); }
fn ld_second(i: u32) -> f32 { return element(second[word_of(i, DTYPE_1)], i, DTYPE_1); }
fn ld_third(i: u32) -> f32 { return element(third[word_of(i, DTYPE_2)], i, DTYPE_2); }

// Loss ids and norm selectors, as `loss_id` and `norm_id` in src/gpu/pairs.rs
// give them (checked by the test gpu::contract::loss_ids_match_the_shaders).
override LOSS: u32 = 0u;
const COSINE_EMBEDDING: u32 = 0u;
const TRIPLET_MARGIN: u32 = 1u;

const NORM_P: u32 = 0u;
const NORM_1: u32 = 1u;
const NORM_2: u32 = 2u;
const NORM_INF: u32 = 3u;

// Where an invocation sits: lane `lane` of the `lanes` that walk row `row`,
// and how many of the row's values they walk (dim, or 0 past the last row,
// where an invocation still takes part in every join).
struct Seat {
    row: u32,
    lane: u32,
    lanes: u32,
    len: u32,
}

fn live(s: Seat) -> bool {
    return s.row < params.rows;
}

// Two vec4s of per-lane values that `row_merge` joins across a row's lanes,
// every lane receiving the result.
struct Two {
    a: vec4<f32>,
    b: vec4<f32>,
}

// How `row_merge` joins two lanes' values:
// - MERGE_SUM: both vectors added;
// - MERGE_ACC: `a` running sums with `b` their dropped rounding errors (`Acc`);
// - MERGE_MAX: `a` the largest |v| per component (-1: a NaN was met), `b`
//   how many components reached it (or how many were NaN), as `max_pack`.
const MERGE_SUM: u32 = 0u;
const MERGE_ACC: u32 = 1u;
const MERGE_MAX: u32 = 2u;

// The same on both sides of a join: a butterfly's partners end with equal
// values, whichever holds which.
fn merge(how: u32, p: Two, q: Two) -> Two {
    switch how {
        case MERGE_ACC: {
            // acc_add of q.a into p.a, componentwise, the larger first.
            let t = p.a + q.a;
            let e = select((p.a - t) + q.a, (q.a - t) + p.a, abs(p.a) < abs(q.a));
            return Two(t, (p.b + q.b) + e);
        }
        case MERGE_MAX: {
            let x = max_merge(vec2(p.a.x, p.b.x), vec2(q.a.x, q.b.x));
            let y = max_merge(vec2(p.a.y, p.b.y), vec2(q.a.y, q.b.y));
            let z = max_merge(vec2(p.a.z, p.b.z), vec2(q.a.z, q.b.z));
            return Two(vec4(x.x, y.x, z.x, 0.0), vec4(x.y, y.y, z.y, 0.0));
        }
        default: {
            return Two(p.a + q.a, p.b + q.b);
        }
    }
}

fn row_sum(lid: u32, v: vec4<f32>) -> vec4<f32> {
    return row_merge(lid, MERGE_SUM, Two(v, vec4(0.0))).a;
}

// A running sum and the rounding error it has dropped so far.
//
// Only the cosine gradient uses it: it needs m and dot to twice f32's length
// (cosine_grad), which no ordering of f32 additions gives. What the
// compensation assumes: the compiler evaluates `(a.s - t) + x` as written. A
// compiler that reassociates floats (Metal's default fast math, DXC's `fast`
// flags) may fold it to 0, and the sums fall back to plain f32; the tests in
// tests/losses/pairs.rs (degenerate_rows, awkward sizes, slices) fail
// then. fma contraction cannot touch it (no products).
struct Acc {
    s: f32,
    c: f32,
}

fn acc_add(a: Acc, x: f32) -> Acc {
    let t = a.s + x;
    let e = select((x - t) + a.s, (a.s - t) + x, abs(a.s) >= abs(x));
    return Acc(t, a.c + e);
}

// An overflowed sum has a NaN correction: keep the infinity, as a plain sum
// would. The overflow is told from the bits: a compiler assuming no inf may
// fold a comparison against inf().
fn acc_total(a: Acc) -> f32 {
    let k = kind_of(a.s);
    return select(a.s + a.c, a.s, k == K_PINF || k == K_NINF);
}

// A blocked sum of vec4 terms in four levels: r0 adds BLOCK terms in plain
// f32, then joins r1, which adds BLOCK such blocks before joining r2, and so
// on; r3 takes what is left (BLOCK^3 terms each). Each term meets at most
// about 4 BLOCK additions of like-sized sums, whatever order or fma
// contraction the compiler picks: unlike a compensation term, nothing here is
// algebraically zero. No loop: llvmpipe runs masked-off loops of a SIMD
// batch too, and stops an invocation after 65 535 iterations (see rows.wgsl).
const BLOCK: u32 = 16u;

struct Pw {
    r0: vec4<f32>,
    r1: vec4<f32>,
    r2: vec4<f32>,
    r3: vec4<f32>,
    // Terms in r0, blocks in r1 and in r2.
    k0: u32,
    k1: u32,
    k2: u32,
}

fn pw_new() -> Pw {
    return Pw(vec4(0.0), vec4(0.0), vec4(0.0), vec4(0.0), 0u, 0u, 0u);
}

fn pw_add(p: ptr<function, Pw>, x: vec4<f32>) {
    (*p).r0 = (*p).r0 + x;
    (*p).k0 = (*p).k0 + 1u;
    if ((*p).k0 == BLOCK) {
        (*p).r1 = (*p).r1 + (*p).r0;
        (*p).r0 = vec4(0.0);
        (*p).k0 = 0u;
        (*p).k1 = (*p).k1 + 1u;
        if ((*p).k1 == BLOCK) {
            (*p).r2 = (*p).r2 + (*p).r1;
            (*p).r1 = vec4(0.0);
            (*p).k1 = 0u;
            (*p).k2 = (*p).k2 + 1u;
            if ((*p).k2 == BLOCK) {
                (*p).r3 = (*p).r3 + (*p).r2;
                (*p).r2 = vec4(0.0);
                (*p).k2 = 0u;
            }
        }
    }
}

// The total, the smallest partial sums first.
fn pw_total(p: ptr<function, Pw>) -> vec4<f32> {
    return (((*p).r0 + (*p).r1) + (*p).r2) + (*p).r3;
}

// The row's upstream, scaled by the reduction.
fn row_upstream(r: u32) -> f32 {
    if (params.write_items != 0u) {
        if (arrayLength(&upstream) > 1u) {
            return upstream[params.row_skip + r];
        }
        return upstream[0];
    }
    return upstream[0] / params.divisor;
}

// The high half of a: its top 12 significant bits. a - hi_half(a) is exact
// and also fits 12 bits, so the product of any two halves is exact in f32.
fn hi_half(a: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(a) & 0xfffff000u);
}

// acc + a * b, the product added exactly as its four partial products. The
// halves come from the bits and their products are exact, so neither
// reassociation nor fma contraction changes them; only acc_add's assumption
// remains.
fn acc_mul(acc: Acc, a: f32, b: f32) -> Acc {
    let ah = hi_half(a);
    let al = a - ah;
    let bh = hi_half(b);
    let bl = b - bh;
    return acc_add(acc_add(acc_add(acc_add(acc, ah * bh), ah * bl), al * bh), al * bl);
}

// d cos / d x_k = (m w_k - dot x_k) / (m den) for the vector x with squared
// norm m (+ eps), w being the other vector. For nearly parallel vectors the
// two terms of the numerator cancel far below their f32 rounding (for D = 1
// to eps w_k), so it is summed from exact products of the double-length sums
// m and dot. Rows whose numerator overflows (or is not finite) take the
// reference's own formula.
fn cosine_grad(w: f32, x: f32, m: Acc, dot: Acc, m_total: f32, den: f32, cos: f32) -> f32 {
    var t = acc_mul(Acc(0.0, 0.0), m.s, w);
    t = acc_add(t, m.c * w);
    t = acc_mul(t, -dot.s, x);
    t = acc_add(t, -(dot.c * x));
    let num = acc_total(t);
    if (kind_of(num) == K_FIN) {
        return num / m_total / den;
    }
    return w / den - cos * x / m_total;
}

// CosineEmbeddingLoss: cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)).
// The norms are multiplied after their square roots, which cannot overflow
// where the product of the squares would. With GRAD the sums take exact
// products (see cosine_grad).
fn cosine_embedding(seat: Seat, lid: u32) -> f32 {
    let r = seat.row;
    let base = params.skip + r * params.dim;
    var dot = Acc(0.0, 0.0);
    var m1 = Acc(0.0, 0.0);
    var m2 = Acc(0.0, 0.0);
    var n1 = 0.0;
    var n2 = 0.0;
    var dot_total = 0.0;
    if (GRAD) {
        // The gradient needs the sums to twice f32's length (cosine_grad):
        // the compensated sums stay here, with what acc_add assumes, and
        // join across lanes with the same compensation.
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let b = ld_second(base + k);
            dot = acc_mul(dot, a, b);
            m1 = acc_mul(m1, a, a);
            m2 = acc_mul(m2, b, b);
        }
        let t = row_merge(lid, MERGE_ACC, Two(vec4(dot.s, m1.s, m2.s, 0.0), vec4(dot.c, m1.c, m2.c, 0.0)));
        dot = Acc(t.a.x, t.b.x);
        m1 = Acc(t.a.y, t.b.y);
        m2 = Acc(t.a.z, t.b.z);
        m1 = acc_add(m1, params.cos_eps);
        m2 = acc_add(m2, params.cos_eps);
        n1 = acc_total(m1);
        n2 = acc_total(m2);
        dot_total = acc_total(dot);
    } else {
        var sums = pw_new();
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let b = ld_second(base + k);
            pw_add(&sums, vec4(a * b, a * a, b * b, 0.0));
        }
        let t = row_sum(lid, pw_total(&sums));
        dot_total = t.x;
        n1 = t.y + params.cos_eps;
        n2 = t.z + params.cos_eps;
    }
    let den = sqrt(n1) * sqrt(n2);
    let cos = dot_total / den;
    var y = 1.0;
    if (params.flag != 0u && live(seat)) {
        y = ld_third(params.row_skip + r);
    }
    // The loss and d loss / d cos: the hinge passes no gradient at exactly
    // cos = margin, labels other than +-1 none.
    var l = 0.0;
    var dl = 0.0;
    if (y == 1.0) {
        l = 1.0 - cos;
        dl = -1.0;
    } else if (y == -1.0) {
        l = clamp_min(cos - params.margin, 0.0);
        dl = select(0.0, 1.0, cos - params.margin > 0.0);
    }
    if (GRAD) {
        var s = 0.0;
        if (live(seat)) {
            s = dl * row_upstream(r);
        }
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let b = ld_second(base + k);
            grad_input[base + k] = s * cosine_grad(b, a, m1, dot, n1, den, cos);
            grad_second[base + k] = s * cosine_grad(a, b, m2, dot, n2, den, cos);
        }
    }
    return l;
}

// |v|^p, plain products for p = 1 and 2; 0 stays 0 (the log of 0 is not
// defined everywhere).
fn pow_p(v: f32) -> f32 {
    let a = abs(v);
    if (params.norm == NORM_1) {
        return a;
    }
    if (params.norm == NORM_2) {
        return a * a;
    }
    if (a == 0.0) {
        return 0.0;
    }
    return exp2(params.p * ln(a) / LN2);
}

// s^(1/p) for the general norm.
fn root_p(s: f32) -> f32 {
    if (s == 0.0) {
        return 0.0;
    }
    return exp2(ln(s) / LN2 / params.p);
}

// d_ap - d_x from the sums of |v|^p (s_ap, s_x) and their termwise
// difference ds = sum(|v_ap|^p - |v_x|^p), without subtracting two rounded
// distances: that would cost an ulp of the distance, far more than the result
// near the hinge.
fn distance_gap(s_ap: f32, s_x: f32, ds: f32) -> f32 {
    if (params.norm == NORM_1) {
        return ds;
    }
    if (params.norm == NORM_2) {
        // d_ap - d_x = (s_ap - s_x) / (d_ap + d_x).
        let d = sqrt(s_ap) + sqrt(s_x);
        // An infinite distance takes the plain difference (inf - x, or NaN
        // for inf - inf), where ds / d would be inf / inf.
        if (kind_of(d) == K_PINF) {
            return sqrt(s_ap) - sqrt(s_x);
        }
        return select(ds / d, 0.0, d == 0.0);
    }
    // d_ap - d_x = d_x (w^(1/p) - 1), w = s_ap / s_x = 1 + ds / s_x: the
    // rounding errors of the p-th roots then scale with the result, not with
    // the distances. Zero, infinite or NaN ratios take the plain difference.
    let w = s_ap / s_x;
    if (kind_of(w) != K_FIN || w <= 0.0) {
        return root_p(s_ap) - root_p(s_x);
    }
    let r = ds / s_x;
    let lw = select(ln(w), log1p(r), abs(r) < 0.5);
    return root_p(s_x) * expm1(lw / params.p);
}

// The largest |v_k| so far, how many components reach it and how many are
// NaN: the p = inf norm (NaN if any component is) and the share of its
// gradient that each component at the max gets.
struct MaxAcc {
    m: f32,
    count: f32,
    nans: f32,
}

fn max_add(s: MaxAcc, v: f32) -> MaxAcc {
    let a = abs(v);
    if (is_nan(a)) {
        return MaxAcc(s.m, s.count, s.nans + 1.0);
    }
    if (a > s.m) {
        return MaxAcc(a, 1.0, s.nans);
    }
    if (a == s.m) {
        return MaxAcc(s.m, s.count + 1.0, s.nans);
    }
    return s;
}

// A NaN component makes the norm NaN: the callers carry that as a flag
// (`max_nan`) to the stores and compute on a finite stand-in instead.
fn max_nan(s: MaxAcc) -> bool {
    return s.nans > 0.0;
}

fn max_count(s: MaxAcc) -> f32 {
    return select(s.count, s.nans, s.nans > 0.0);
}

// A MaxAcc in two floats for MERGE_MAX: (largest |v|, its count), or (-1,
// the NaN count) once a NaN was met.
fn max_pack(s: MaxAcc) -> vec2<f32> {
    return select(vec2(s.m, s.count), vec2(-1.0, s.nans), s.nans > 0.0);
}

fn max_unpack(p: vec2<f32>) -> MaxAcc {
    if (p.x < 0.0) {
        return MaxAcc(0.0, 0.0, p.y);
    }
    return MaxAcc(p.x, p.y, 0.0);
}

// Two lanes' packed maxima joined: NaN wins (the NaN counts add), else the
// larger, the counts adding at a tie.
fn max_merge(p: vec2<f32>, q: vec2<f32>) -> vec2<f32> {
    if (p.x < 0.0 || q.x < 0.0) {
        return vec2(-1.0, select(0.0, p.y, p.x < 0.0) + select(0.0, q.y, q.x < 0.0));
    }
    if (p.x > q.x) {
        return p;
    }
    if (q.x > p.x) {
        return q;
    }
    return vec2(p.x, p.y + q.y);
}

// The maxima of the three distances of a triplet row, each joined across
// the row's lanes.
struct Max3 {
    ap: MaxAcc,
    an: MaxAcc,
    pn: MaxAcc,
}

fn row_max3(lid: u32, ap: MaxAcc, an: MaxAcc, pn: MaxAcc) -> Max3 {
    let x = max_pack(ap);
    let y = max_pack(an);
    let z = max_pack(pn);
    let t = row_merge(lid, MERGE_MAX, Two(vec4(x.x, y.x, z.x, 0.0), vec4(x.y, y.y, z.y, 0.0)));
    return Max3(
        max_unpack(vec2(t.a.x, t.b.x)),
        max_unpack(vec2(t.a.y, t.b.y)),
        max_unpack(vec2(t.a.z, t.b.z)),
    );
}

// ln 2 in two parts: k * LN2_HI is exact for |k| < 2^9 (LN2_HI has 15
// significant bits). What this assumes: `k * LN2_HI + (... + k * LN2_LO)` and
// `(y - n * LN2_HI) - n * LN2_LO` are not reassociated into one product with
// ln 2 (fma contraction of either product is harmless: it only rounds less).
// Without LN2_LO in either, tests/losses/pairs.rs
// general_p_gradients_hold_the_two_part_ln2 fails.
const LN2_HI: f32 = 0.693145751953125;
const LN2_LO: f32 = 1.4286068e-6;

// ln x to about an ulp: the exponent's multiple of ln 2 in two parts, the
// mantissa in [0.707, 1.414) through the series. For finite x >= 0 (callers
// classify the rest); 0 gives `ln`'s finite floor -FLT_MAX.
fn ln_acc(x: f32) -> f32 {
    if (x <= 0.0) {
        return ln(x);
    }
    let f = frexp(x);
    var m = f.fract;
    var e = f.exp;
    if (m < 0.70710678) {
        m = m * 2.0;
        e = e - 1;
    }
    let k = f32(e);
    return k * LN2_HI + (log1p_series(m - 1.0) + k * LN2_LO);
}

// e^y to about an ulp (the built-in may be off by 3 + 2|y| ulp): y = n ln 2
// + f with |f| <= ln 2 / 2, a polynomial for e^f, then the power of two.
// For finite y (callers classify the rest); past 80 the built-in, whose
// overflow the callers classify.
fn exp_acc(y: f32) -> f32 {
    if (abs(y) >= 80.0) {
        return exp(y);
    }
    let n = round(y / LN2);
    let f = (y - n * LN2_HI) - n * LN2_LO;
    var q = 1.0 / 40320.0;
    q = q * f + 1.0 / 5040.0;
    q = q * f + 1.0 / 720.0;
    q = q * f + 1.0 / 120.0;
    q = q * f + 1.0 / 24.0;
    q = q * f + 1.0 / 6.0;
    q = q * f + 0.5;
    q = q * f + 1.0;
    return ldexp(1.0 + f * q, i32(n));
}

// |v_k| / vmax raised to p, for the scaled sums of the general norm. Only a
// finite nonzero vmax has its sum used (see triplet_margin): a zero, NaN
// (stand-in 0) or infinite one gives 0 without computing, and then so does
// every v_k, which is finite for a finite vmax.
fn scaled_pow(v: f32, vmax: f32) -> f32 {
    if (!is_fin(vmax) || is_zero(vmax) || !is_fin(v)) {
        return 0.0;
    }
    let r = abs(v) / vmax;
    if (r == 0.0) {
        return 0.0;
    }
    // r in (0, 1] and p > 0: y <= 0, -inf only for an absurd p (e^y = 0).
    let y = params.p * ln_acc(r);
    return select(exp_acc(select(y, 0.0, !is_fin(y))), 0.0, !is_fin(y));
}

// d |v|_p / d v_k as torch's norm_backward (see norm_grad in src/cpu/pairs.rs),
// with its kind: v and d may be infinite or NaN (from the inputs), and are
// classified from their bits. `d` is the norm, except for the general p:
// there the largest |v_k| (0 when `norm_nan`: a NaN component), with `aux` =
// ln sum (|v_k| / d)^p; for p = inf, `aux` components share the gradient
// (d = -1 for a NaN norm, which no |v_k| equals).
fn norm_grad(v: f32, d: f32, aux: f32, norm_nan: bool) -> Ext {
    let ve = ext(v);
    switch params.norm {
        case NORM_INF: {
            // aux >= 1 wherever the term is taken.
            let at_max = ext_eq(ext_abs(ve), ext(d)) || ve.k == K_NAN;
            return fin(select(0.0, ext_sign(ve) / max(aux, 1.0), at_max));
        }
        case NORM_1: {
            return fin(ext_sign(ve));
        }
        case NORM_2: {
            return ext_pick(ext_div(ve, ext(d)), fin(0.0), is_zero(d));
        }
        default: {
            // A NaN norm: every nonzero component's term is NaN.
            if (norm_nan) {
                return ext_pick(ext_kind(K_NAN), fin(0.0), is_zero(v));
            }
            if (is_zero(d) || is_zero(v)) {
                return fin(0.0);
            }
            // Past here v is finite unless d is infinite: then |v_k| / d is
            // 0 for a finite v_k (aux = 0), NaN for an infinite one.
            if (ve.k != K_FIN) {
                return ext_kind(K_NAN);
            }
            let dinf = kind_of(d) == K_PINF;
            let ratio = select(abs(v) / select(d, 1.0, dinf), 0.0, dinf);
            // |v_k|^(p-1) / |v|_p^(p-1) with |v|_p = vmax S^(1/p): as one
            // exponential of small arguments, so that no power overflows and
            // a single component gives exactly sign(v_k). The exponent
            // overflows only from ln's floor at a zero ratio: e^-inf = 0,
            // e^inf = inf.
            let q = params.p - 1.0;
            let y = ext(q * ln_acc(ratio) - q / params.p * aux);
            var e = ext(exp_acc(y.v));
            e = ext_pick(e, fin(0.0), y.k == K_NINF);
            e = ext_pick(e, ext_kind(y.k), y.k == K_PINF || y.k == K_NAN);
            return ext_mul(fin(ext_sign(ve)), e);
        }
    }
}

// TripletMarginLoss: max(margin + d(a, p) - d(a, n), 0), d(u, w) = |u - w + eps|_p,
// with swap d(a, n) -> min(d(a, n), d(p, n)).
fn triplet_margin(seat: Seat, lid: u32) -> Ext {
    let r = seat.row;
    let base = params.skip + r * params.dim;
    let eps = params.eps;
    let swap = params.flag != 0u;
    var l = 0.0;
    // For GRAD: the norms and their `aux` (see norm_grad), and whether d(p, n)
    // is the negative distance or ties with d(a, n).
    var d_ap = 0.0;
    var d_an = 0.0;
    var d_pn = 0.0;
    var aux_ap = 1.0;
    var aux_an = 1.0;
    var aux_pn = 1.0;
    var use_pn = false;
    var tie = false;
    // Whether a distance is NaN (a NaN component, see max_nan), and so the
    // loss.
    var nan_ap = false;
    var nan_an = false;
    var nan_pn = false;
    var l_nan = false;
    if (params.norm == NORM_INF) {
        var m_ap = MaxAcc(0.0, 0.0, 0.0);
        var m_an = MaxAcc(0.0, 0.0, 0.0);
        var m_pn = MaxAcc(0.0, 0.0, 0.0);
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let p = ld_second(base + k);
            let n = ld_third(base + k);
            m_ap = max_add(m_ap, a - p + eps);
            m_an = max_add(m_an, a - n + eps);
            if (swap) {
                m_pn = max_add(m_pn, p - n + eps);
            }
        }
        let m = row_max3(lid, m_ap, m_an, m_pn);
        m_ap = m.ap;
        m_an = m.an;
        m_pn = m.pn;
        nan_ap = max_nan(m_ap);
        nan_an = max_nan(m_an);
        nan_pn = max_nan(m_pn);
        // A NaN norm's stand-in is -1, which no |v_k| equals: norm_grad then
        // gives its NaN components 0 / count and the others 0, as for NaN.
        d_ap = select(m_ap.m, -1.0, nan_ap);
        d_an = select(m_an.m, -1.0, nan_an);
        d_pn = select(m_pn.m, -1.0, nan_pn);
        aux_ap = max_count(m_ap);
        aux_an = max_count(m_an);
        aux_pn = max_count(m_pn);
        // torch.min(d(a, n), d(p, n)) before the difference: inf - min(inf, x)
        // is inf, where the larger of inf - inf and inf - x would be NaN. A
        // NaN d(p, n) is the minimum; a NaN d(a, n) compares with nothing.
        use_pn = swap && (nan_pn || (!nan_an && d_pn < d_an));
        tie = swap && !nan_pn && !nan_an && d_pn == d_an;
        l = clamp_min(params.margin + (d_ap - select(d_an, d_pn, use_pn)), 0.0);
        l_nan = nan_ap || select(nan_an, nan_pn, use_pn);
    } else {
        // (s_ap, s_an, ds_an, ds_pn) and (s_pn, ...).
        var sums = pw_new();
        var sums_pn = pw_new();
        let scaled = GRAD && params.norm == NORM_P;
        var m_ap = MaxAcc(0.0, 0.0, 0.0);
        var m_an = MaxAcc(0.0, 0.0, 0.0);
        var m_pn = MaxAcc(0.0, 0.0, 0.0);
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let p = ld_second(base + k);
            let n = ld_third(base + k);
            if (scaled) {
                m_ap = max_add(m_ap, a - p + eps);
                m_an = max_add(m_an, a - n + eps);
                m_pn = max_add(m_pn, p - n + eps);
            }
            let t_ap = pow_p(a - p + eps);
            let t_an = pow_p(a - n + eps);
            var t_pn = 0.0;
            if (swap) {
                t_pn = pow_p(p - n + eps);
                pw_add(&sums_pn, vec4(t_pn, 0.0, 0.0, 0.0));
            }
            pw_add(&sums, vec4(t_ap, t_an, t_ap - t_an, t_ap - t_pn));
        }
        let sum2 = row_merge(lid, MERGE_SUM, Two(pw_total(&sums), pw_total(&sums_pn)));
        let tot = sum2.a;
        let sap = tot.x;
        let san = tot.y;
        let spn = sum2.b.x;
        // torch.min(d(a, n), d(p, n)) first (the p-th powers order as the
        // distances do), then the gap to the smaller one.
        use_pn = swap && (spn < san || is_nan(spn));
        tie = swap && spn == san;
        if (use_pn) {
            l = clamp_min(params.margin + distance_gap(sap, spn, tot.w), 0.0);
        } else {
            l = clamp_min(params.margin + distance_gap(sap, san, tot.z), 0.0);
        }
        if (GRAD && params.norm == NORM_2) {
            d_ap = sqrt(sap);
            d_an = sqrt(san);
            d_pn = sqrt(spn);
        }
        if (scaled) {
            // The sums of |v_k|^p accurate enough for the gradient: scaled by
            // the largest |v_k| (one more walk over the row), each power to
            // about an ulp.
            let m = row_max3(lid, m_ap, m_an, m_pn);
            // A NaN norm makes every nonzero component's gradient NaN
            // (norm_grad): its scaled sum takes the stand-in scale 0 and goes
            // unused.
            nan_ap = max_nan(m.ap);
            nan_an = max_nan(m.an);
            nan_pn = max_nan(m.pn);
            d_ap = select(m.ap.m, 0.0, nan_ap);
            d_an = select(m.an.m, 0.0, nan_an);
            d_pn = select(m.pn.m, 0.0, nan_pn);
            var q = pw_new();
            for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
                let a = ld_input(base + k);
                let p = ld_second(base + k);
                let n = ld_third(base + k);
                var q_pn = 0.0;
                if (swap) {
                    q_pn = scaled_pow(p - n + eps, d_pn);
                }
                pw_add(&q, vec4(scaled_pow(a - p + eps, d_ap), scaled_pow(a - n + eps, d_an), q_pn, 0.0));
            }
            let qt = row_sum(lid, pw_total(&q));
            // An infinite component leaves only 0 and NaN gradients: the
            // others' ratios are 0 whatever the sum. A zero norm's aux goes
            // unused too (norm_grad gives 0).
            aux_ap = select(ln_acc(qt.x), 0.0, kind_of(d_ap) == K_PINF);
            aux_an = select(ln_acc(qt.y), 0.0, kind_of(d_an) == K_PINF);
            aux_pn = select(ln_acc(qt.z), 0.0, kind_of(d_pn) == K_PINF);
        }
    }
    if (GRAD) {
        // The shares of the negative distance's gradient, (a, n) and (p, n):
        // torch.min splits it evenly at a tie.
        var w_an = 1.0;
        var w_pn = 0.0;
        if (use_pn) {
            w_an = 0.0;
            w_pn = 1.0;
        } else if (tie) {
            w_an = 0.5;
            w_pn = 0.5;
        }
        // No gradient where the hinge is at or below 0 (or NaN); the zero
        // still meets every term, so NaN terms stay NaN, as in autograd.
        var g = 0.0;
        if (live(seat)) {
            g = select(0.0, row_upstream(r), l > 0.0 && !l_nan);
        }
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let p = ld_second(base + k);
            let n = ld_third(base + k);
            let n_ap = norm_grad(a - p + eps, d_ap, aux_ap, nan_ap);
            let n_an = norm_grad(a - n + eps, d_an, aux_an, nan_an);
            var n_pn = fin(0.0);
            if (swap) {
                n_pn = norm_grad(p - n + eps, d_pn, aux_pn, nan_pn);
            }
            // IEEE on the kinds: a NaN or infinite term reaches every sum it
            // meets, also at weight 0. The weights are 0, 0.5 or 1: their
            // products are exact, whatever fma contraction does.
            let ge = ext(g);
            let an = ext_mul(fin(w_an), n_an);
            let pn = ext_mul(fin(w_pn), n_pn);
            grad_input[base + k] = ext_f32(ext_mul(ge, ext_sub(n_ap, an)));
            grad_second[base + k] = ext_f32(ext_mul(ge, ext_sub(ext_neg(n_ap), pn)));
            grad_third[base + k] = ext_f32(ext_mul(ge, ext_add(an, pn)));
        }
    }
    return ext_of(l, select(K_FIN, K_NAN, l_nan));
}

// The loss of the seat's row, on every lane of it, as the kind the drivers
// store. Every invocation of a workgroup calls it (with a seat past the last
// row if need be): the joins inside may wait for all of them.
fn item(seat: Seat, lid: u32) -> Ext {
    switch LOSS {
        case COSINE_EMBEDDING: { return ext(cosine_embedding(seat, lid)); }
        case TRIPLET_MARGIN: { return triplet_margin(seat, lid); }
        // Unreachable (the host sets LOSS from loss_id): a NaN kind, stored
        // as NaN, if it ever were.
        default: { return ext_kind(K_NAN); }
    }
}
