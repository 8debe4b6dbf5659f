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
// No value the kernels compute with is NaN or infinite (see `Ext` in
// common.wgsl). Each loaded component is classified from its bits right
// after its load (`ext`, `diffs`, `cos_terms`); only finite parts enter the
// sums, maxima and products, and the kinds of the other terms travel beside
// them: as flags joined across the lanes (`row_kinds`) or as counts in the
// maxima (`MaxAcc`). A row's sums become `Ext` values once joined
// (`sum_ext`), the loss and gradients are `Ext` arithmetic from there, and
// NaN and the infinities are built only where they are stored. A finite
// computation that may overflow (a product of large components, a sum, a
// power) is classified from its bits where its result is used.
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
    // cosine_embedding: labels given (triplet_margin's swap is `SWAP`).
    flag: u32,
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
    _pad0: u32,
    _pad1: u32,
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
// triplet_margin's norm (`NORM_*` below) as a pipeline constant: the other
// norms' per-value paths then fold away, where a CPU adapter would run them
// for every value, masked off, were it a uniform's test.
override NORM: u32 = 2u;
// triplet_margin's swap, for the same reason: d(p, n) is a third sum per value.
override SWAP: bool = false;
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
// - MERGE_ACC: `a` running sums with `b` their dropped rounding errors (`Acc`,
//   whose comment says what the compensation assumes);
// - MERGE_MAX: `a` the largest finite |v| per component or a tag (MAX_NAN: a
//   NaN was met, MAX_INF: an infinity and no NaN), `b` how many components
//   reached it (or how many were NaN, or infinite), as `max_pack`.
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

// Whether a lane's flags hold kind k, as a count for MERGE_SUM: a sum of
// such counts is exact, and positive once one of them is, in any order.
fn kind_count(flags: u32, k: u32) -> f32 {
    return select(0.0, 1.0, (flags & (1u << k)) != 0u);
}

fn kind_if(count: f32, k: u32) -> u32 {
    return select(0u, 1u << k, count > 0.0);
}

// The kinds (`kind_flag` bits) of the non-finite terms of three row sums,
// joined across the row's lanes. The first sum's terms may be +inf, -inf or
// NaN; the other two sum squares or powers of |v|, never -inf.
fn row_kinds(lid: u32, f: vec3<u32>) -> vec3<u32> {
    let t = row_merge(
        lid,
        MERGE_SUM,
        Two(
            vec4(kind_count(f.x, K_PINF), kind_count(f.x, K_NINF), kind_count(f.x, K_NAN), kind_count(f.y, K_PINF)),
            vec4(kind_count(f.y, K_NAN), kind_count(f.z, K_PINF), kind_count(f.z, K_NAN), 0.0),
        ),
    );
    return vec3(
        kind_if(t.a.x, K_PINF) | kind_if(t.a.y, K_NINF) | kind_if(t.a.z, K_NAN),
        kind_if(t.a.w, K_PINF) | kind_if(t.b.x, K_NAN),
        kind_if(t.b.y, K_PINF) | kind_if(t.b.z, K_NAN),
    );
}

// A row sum as an extended real: its finite part, classified from its bits
// (the sum may have overflowed), joined with the kinds of its other terms as
// IEEE addition joins them (+inf and -inf give NaN).
fn sum_ext(v: f32, kinds: u32) -> Ext {
    return ext_add(ext(v), with_kinds(0.0, kinds));
}

// The square root of a sum of squares (never negative).
fn ext_sqrt(s: Ext) -> Ext {
    return Ext(sqrt(s.v), s.k);
}

// s / d for a d that is never negative (+0, positive, +inf or NaN): IEEE
// division, signed zeros included. common.wgsl's ext_div gives +0 for a
// finite s over an infinite d, where IEEE gives the sign of s: a gradient
// v_k / |v| of a negative v_k at an infinite norm is -0 here, as in the twin.
fn ext_over(s: Ext, d: Ext) -> Ext {
    let sf = s.k == K_FIN;
    let df = d.k == K_FIN;
    let dz = df && is_zero(d.v);
    let sz = sf && is_zero(s.v);
    // A finite s over a finite nonzero d; a zero s keeps its sign over 1.
    var e = ext(s.v / select(d.v, 1.0, !df || dz || sz));
    e = ext_pick(e, fin(select(0.0, -0.0, sign_bit(s.v))), !df);
    e = ext_pick(e, ext_kind(select(K_PINF, K_NINF, ext_neg_sign(s))), !sf || dz);
    let nan = s.k == K_NAN || d.k == K_NAN || (!sf && !df) || (sz && dz);
    return ext_pick(e, ext_kind(K_NAN), nan);
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

// The sum to f32. The terms are finite, but the running sum of large ones
// may overflow, and its correction is then NaN: the overflowed sum is kept,
// as a plain sum would, told from its bits, and classified where it is used
// (`sum_ext`, cosine_grad).
fn acc_total(a: Acc) -> f32 {
    return select(a.s, a.s + a.c, is_fin(a.s));
}

// A blocked sum of vec4 terms in four levels: r0 adds BLOCK terms in plain
// f32, then joins r1, which adds BLOCK such blocks before joining r2, and so
// on; r3 takes what is left (BLOCK^3 terms each). Each term meets at most
// about 4 BLOCK additions of like-sized sums, whatever order or fma
// contraction the compiler picks: unlike a compensation term, nothing here is
// algebraically zero. The hot loops add BLOCK terms in plain f32 themselves
// and join the block with `pw_join` (pw_add's tests cost every term on a CPU
// adapter, which runs both sides of a branch); that inner loop adds a 16th to
// a walk's iterations, which llvmpipe caps at 65 535 per invocation (see the
// variants' limits in src/gpu/pairs.rs).
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
        let block = (*p).r0;
        (*p).r0 = vec4(0.0);
        (*p).k0 = 0u;
        pw_join(p, block);
    }
}

// A sum of BLOCK terms (or fewer, at a row's end) added at once, as pw_add
// would have after BLOCK terms: the loops that sum blocks in plain f32 and
// join them here run its tests once per block, not once per term.
fn pw_join(p: ptr<function, Pw>, x: vec4<f32>) {
    (*p).r1 = (*p).r1 + x;
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

// The total, the smallest partial sums first.
fn pw_total(p: ptr<function, Pw>) -> vec4<f32> {
    return (((*p).r0 + (*p).r1) + (*p).r2) + (*p).r3;
}

// The row's upstream, scaled by the reduction, classified from its bits (a
// caller's upstream may be NaN or infinite).
fn row_upstream(r: u32) -> Ext {
    if (params.write_items != 0u) {
        if (arrayLength(&upstream) > 1u) {
            return ext(upstream[params.row_skip + r]);
        }
        return ext(upstream[0]);
    }
    return ext_over(ext(upstream[0]), fin(params.divisor));
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
// norm m (+ eps), w being the other vector, in a row whose sums are finite
// (so are then w and x). For nearly parallel vectors the two terms of the
// numerator cancel far below their f32 rounding (for D = 1 to eps w_k), so
// it is summed from exact products of the double-length sums m and dot.
// Where the numerator would overflow (told from the bits of its two
// products) or is not finite, the reference's own formula; its overflow is
// classified where it is used (`ext`) or stored as it is.
fn cosine_grad(w: f32, x: f32, m: Acc, dot: Acc, m_total: f32, den: f32, cos: f32) -> f32 {
    if (is_fin(m.s * w) && is_fin(dot.s * x)) {
        var t = acc_mul(Acc(0.0, 0.0), m.s, w);
        t = acc_add(t, m.c * w);
        t = acc_mul(t, -dot.s, x);
        t = acc_add(t, -(dot.c * x));
        let num = acc_total(t);
        if (is_fin(num)) {
            return num / m_total / den;
        }
    }
    return w / den - cos * x / m_total;
}

// The reference's formula in IEEE arithmetic on the kinds, for rows with a
// sum that is not finite.
fn cosine_grad_ext(w: Ext, x: Ext, m_total: Ext, den: Ext, cos: Ext) -> Ext {
    return ext_sub(ext_over(w, den), ext_over(ext_mul(cos, x), m_total));
}

// The terms of x1.x2, |x1|^2 and |x2|^2 for one pair of loaded components:
// their finite parts (0 for the others) and their kinds (`kind_flag`), as
// IEEE multiplication gives them (an infinity times 0 is NaN).
struct CosTerms {
    dot: f32,
    m1: f32,
    m2: f32,
    kinds: vec3<u32>,
}

fn cos_terms(a: f32, b: f32) -> CosTerms {
    // Products of the finite parts, an overflow told from its bits; the
    // kinds of a non-finite operand's products as IEEE multiplication gives
    // them (ext_mul's rules). Selects, not a branch for the rare case: a CPU
    // adapter runs both sides of a branch for every element.
    let ka = kind_of(a);
    let kb = kind_of(b);
    let a0 = select(0.0, a, ka == K_FIN);
    let b0 = select(0.0, b, kb == K_FIN);
    let d = a0 * b0;
    let s1 = a0 * a0;
    let s2 = b0 * b0;
    let nan = ka == K_NAN || kb == K_NAN;
    let a_inf = ka == K_PINF || ka == K_NINF;
    let b_inf = kb == K_PINF || kb == K_NINF;
    let zero = (a_inf && kb == K_FIN && is_zero(b)) || (b_inf && ka == K_FIN && is_zero(a));
    let inf_d = select(K_PINF, K_NINF, sign_bit(a) != sign_bit(b));
    let kd = select(select(kind_of(d), inf_d, a_inf || b_inf), K_NAN, nan || zero);
    let k1 = select(kind_of(s1), select(K_PINF, K_NAN, ka == K_NAN), ka != K_FIN);
    let k2 = select(kind_of(s2), select(K_PINF, K_NAN, kb == K_NAN), kb != K_FIN);
    return CosTerms(
        select(0.0, d, kd == K_FIN),
        select(0.0, s1, k1 == K_FIN),
        select(0.0, s2, k2 == K_FIN),
        vec3(kind_flag(kd), kind_flag(k1), kind_flag(k2)),
    );
}

// The common pair of components: both below 2^63 in magnitude, so that
// their product and squares are finite (cos_terms's kinds all finite).
fn small2(a: f32, b: f32) -> bool {
    return max(bitcast<u32>(a) & 0x7fffffffu, bitcast<u32>(b) & 0x7fffffffu) < 0x5f000000u;
}

// CosineEmbeddingLoss: cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)).
// The norms are multiplied after their square roots, which cannot overflow
// where the product of the squares would. With GRAD the sums take exact
// products (see cosine_grad).
fn cosine_embedding(seat: Seat, lid: u32) -> Ext {
    let r = seat.row;
    let base = params.skip + r * params.dim;
    var dot = Acc(0.0, 0.0);
    var m1 = Acc(0.0, 0.0);
    var m2 = Acc(0.0, 0.0);
    // The finite parts of (dot, |x1|^2 + eps, |x2|^2 + eps), and the kinds of
    // the terms left out of them.
    var sums = vec3(0.0);
    var kinds = vec3(0u);
    if (GRAD) {
        // The gradient needs the sums to twice f32's length (cosine_grad):
        // the compensated sums stay here, with what acc_add assumes, and
        // join across lanes with the same compensation. A term that is not
        // finite adds 0 * 0 instead.
        // The common pairs (`small2`) in one branch-free loop, the others
        // (0 there) in their own.
        var rare = 0u;
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let b = ld_second(base + k);
            let usual = small2(a, b);
            rare = rare + select(1u, 0u, usual);
            let a0 = select(0.0, a, usual);
            let b0 = select(0.0, b, usual);
            dot = acc_mul(dot, a0, b0);
            m1 = acc_mul(m1, a0, a0);
            m2 = acc_mul(m2, b0, b0);
        }
        for (var k = seat.lane; rare > 0u && k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let b = ld_second(base + k);
            if (!small2(a, b)) {
                let t = cos_terms(a, b);
                kinds = kinds | t.kinds;
                let fd = t.kinds.x == 0u;
                let f1 = t.kinds.y == 0u;
                let f2 = t.kinds.z == 0u;
                dot = acc_mul(dot, select(0.0, a, fd), select(0.0, b, fd));
                m1 = acc_mul(m1, select(0.0, a, f1), select(0.0, a, f1));
                m2 = acc_mul(m2, select(0.0, b, f2), select(0.0, b, f2));
            }
        }
        let t = row_merge(lid, MERGE_ACC, Two(vec4(dot.s, m1.s, m2.s, 0.0), vec4(dot.c, m1.c, m2.c, 0.0)));
        dot = Acc(t.a.x, t.b.x);
        m1 = Acc(t.a.y, t.b.y);
        m2 = Acc(t.a.z, t.b.z);
        m1 = acc_add(m1, params.cos_eps);
        m2 = acc_add(m2, params.cos_eps);
        sums = vec3(acc_total(dot), acc_total(m1), acc_total(m2));
    } else {
        // The common pairs (`small2`) in blocks of BLOCK per lane, the others
        // (0 there) in a loop of their own, as in triplet_margin.
        var pw = pw_new();
        var rare = 0u;
        var k = seat.lane;
        while (k < seat.len) {
            var block = vec4(0.0);
            for (var j = 0u; j < BLOCK && k < seat.len; j = j + 1u) {
                let a = ld_input(base + k);
                let b = ld_second(base + k);
                let usual = small2(a, b);
                rare = rare + select(1u, 0u, usual);
                let a0 = select(0.0, a, usual);
                let b0 = select(0.0, b, usual);
                block = block + vec4(a0 * b0, a0 * a0, b0 * b0, 0.0);
                k = k + seat.lanes;
            }
            pw_join(&pw, block);
        }
        for (var k = seat.lane; rare > 0u && k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let b = ld_second(base + k);
            if (!small2(a, b)) {
                let t = cos_terms(a, b);
                kinds = kinds | t.kinds;
                pw_add(&pw, vec4(t.dot, t.m1, t.m2, 0.0));
            }
        }
        let t = row_sum(lid, pw_total(&pw));
        sums = vec3(t.x, t.y + params.cos_eps, t.z + params.cos_eps);
    }
    let all = row_kinds(lid, kinds);
    let dot_e = sum_ext(sums.x, all.x);
    let n1 = sum_ext(sums.y, all.y);
    let n2 = sum_ext(sums.z, all.z);
    let den = ext_mul(ext_sqrt(n1), ext_sqrt(n2));
    let cos = ext_over(dot_e, den);
    var y = fin(1.0);
    if (params.flag != 0u && live(seat)) {
        let label = ld_third(params.row_skip + r);
        y = ext(label);
    }
    // The loss and d loss / d cos: the hinge passes no gradient at exactly
    // cos = margin, labels other than +-1 (NaN and infinities too) none.
    var l = fin(0.0);
    var dl = 0.0;
    if (y.k == K_FIN && y.v == 1.0) {
        l = ext_sub(fin(1.0), cos);
        dl = -1.0;
    } else if (y.k == K_FIN && y.v == -1.0) {
        let h = ext_sub(cos, fin(params.margin));
        l = ext_clamp_min(h, 0.0);
        dl = select(0.0, 1.0, ext_lt(fin(0.0), h));
    }
    if (GRAD) {
        // dl times the upstream: +-upstream, or 0 where the loss passes no
        // gradient, whatever the upstream (as the twin has it).
        var s = fin(0.0);
        if (live(seat) && dl != 0.0) {
            s = ext_mul(fin(dl), row_upstream(r));
        }
        // Finite sums hold finite components only (a non-finite one gives a
        // non-finite square).
        let exact = dot_e.k == K_FIN && n1.k == K_FIN && n2.k == K_FIN && den.k == K_FIN && cos.k == K_FIN;
        if (exact && s.k == K_FIN) {
            // The common case in f32, the one loop that runs where no row
            // of a SIMD batch needs the other (an overflow is stored as the
            // IEEE product gives it).
            for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
                let a = ld_input(base + k);
                let b = ld_second(base + k);
                grad_input[base + k] = s.v * cosine_grad(b, a, m1, dot, n1.v, den.v, cos.v);
                grad_second[base + k] = s.v * cosine_grad(a, b, m2, dot, n2.v, den.v, cos.v);
            }
        } else {
            for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
                let a = ld_input(base + k);
                let b = ld_second(base + k);
                let ae = ext(a);
                let be = ext(b);
                var gi = cosine_grad_ext(be, ae, n1, den, cos);
                var gs = cosine_grad_ext(ae, be, n2, den, cos);
                if (exact) {
                    gi = ext(cosine_grad(b, a, m1, dot, n1.v, den.v, cos.v));
                    gs = ext(cosine_grad(a, b, m2, dot, n2.v, den.v, cos.v));
                }
                grad_input[base + k] = ext_f32(ext_mul(s, gi));
                grad_second[base + k] = ext_f32(ext_mul(s, gs));
            }
        }
    }
    return l;
}

// |v|^p of a finite v: plain products for p = 1 and 2; 0 stays 0 (the log of
// 0 is not defined everywhere). The power may overflow: the sums it joins
// are classified from their bits (`sum_ext`, `ext`).
fn pow_p(v: f32) -> f32 {
    let a = abs(v);
    if (NORM == NORM_1) {
        return a;
    }
    if (NORM == NORM_2) {
        return a * a;
    }
    if (a == 0.0) {
        return 0.0;
    }
    return exp2(params.p * ln(a) / LN2);
}

// s^(1/p) for the general norm (s >= 0), an overflow classified from its
// bits.
fn root_p(s: Ext) -> Ext {
    if (s.k != K_FIN || s.v == 0.0) {
        return s;
    }
    return ext(exp2(ln(s.v) / LN2 / params.p));
}

// A distance from its sum of p-th powers (not for NORM_INF).
fn distance(s: Ext) -> Ext {
    switch NORM {
        case NORM_1: { return s; }
        case NORM_2: { return ext_sqrt(s); }
        default: { return root_p(s); }
    }
}

// d_ap - d_x from the sums of |v|^p (s_ap, s_x) and their termwise
// difference ds = sum(|v_ap|^p - |v_x|^p), without subtracting two rounded
// distances: that would cost an ulp of the distance, far more than the result
// near the hinge.
fn distance_gap(s_ap: Ext, s_x: Ext, ds: Ext) -> Ext {
    // A sum that is not finite (an infinite or NaN component, or an overflow)
    // takes the plain difference: inf - x, or NaN for inf - inf.
    if (s_ap.k != K_FIN || s_x.k != K_FIN || ds.k != K_FIN) {
        return ext_sub(distance(s_ap), distance(s_x));
    }
    if (NORM == NORM_1) {
        return ds;
    }
    if (NORM == NORM_2) {
        // d_ap - d_x = (s_ap - s_x) / (d_ap + d_x).
        let d = sqrt(s_ap.v) + sqrt(s_x.v);
        let zero = is_zero(d);
        return fin(select(ds.v / select(d, 1.0, zero), 0.0, zero));
    }
    // d_ap - d_x = d_x (w^(1/p) - 1), w = s_ap / s_x = 1 + ds / s_x: the
    // rounding errors of the p-th roots then scale with the result, not with
    // the distances. Zero or overflowing ratios, and those whose p-th root
    // leaves e^+-80, take the plain difference: there the distances differ by
    // orders of magnitude, and it loses nothing.
    if (!is_zero(s_x.v)) {
        let w = s_ap.v / s_x.v;
        if (is_fin(w) && w > 0.0) {
            let r = ds.v / s_x.v;
            var lw = 0.0;
            if (abs(r) < 0.5) {
                lw = log1p(r);
            } else {
                lw = ln(w);
            }
            let e = lw / params.p;
            if (abs(e) < 80.0) {
                return ext_mul(root_p(s_x), fin(expm1(e)));
            }
        }
    }
    return ext_sub(root_p(s_ap), root_p(s_x));
}

// The largest finite |v_k| so far, how many components reach it, and how
// many are NaN and how many infinite: the p = inf norm (NaN if any component
// is, else +inf if any is infinite) and the share of its gradient that each
// component at the max gets.
struct MaxAcc {
    m: f32,
    count: f32,
    nans: f32,
    infs: f32,
}

fn max_new() -> MaxAcc {
    return MaxAcc(0.0, 0.0, 0.0, 0.0);
}

fn max_add(s: MaxAcc, v: Ext) -> MaxAcc {
    let a = abs(v.v);
    let f = v.k == K_FIN;
    let above = f && a > s.m;
    let at = f && a == s.m;
    return MaxAcc(
        select(s.m, a, above),
        select(s.count + select(0.0, 1.0, at), 1.0, above),
        s.nans + select(0.0, 1.0, v.k == K_NAN),
        s.infs + select(0.0, 1.0, v.k == K_PINF || v.k == K_NINF),
    );
}

// The norm, as its kind where a component was NaN or infinite.
fn max_norm(s: MaxAcc) -> Ext {
    return ext_pick(ext_pick(fin(s.m), ext_kind(K_PINF), s.infs > 0.0), ext_kind(K_NAN), s.nans > 0.0);
}

// How many components share the norm's gradient: those at the max, the
// infinite ones for an infinite norm, the NaN ones for a NaN norm.
fn max_count(s: MaxAcc) -> f32 {
    return select(select(s.count, s.infs, s.infs > 0.0), s.nans, s.nans > 0.0);
}

// A MaxAcc in two floats for MERGE_MAX: (largest |v|, its count), or a tag
// and the count of what it names: MAX_NAN once a NaN was met, else MAX_INF
// once an infinity was. Tags are negative, which no |v| is.
const MAX_NAN: f32 = -1.0;
const MAX_INF: f32 = -2.0;

fn max_pack(s: MaxAcc) -> vec2<f32> {
    let inf = select(vec2(s.m, s.count), vec2(MAX_INF, s.infs), s.infs > 0.0);
    return select(inf, vec2(MAX_NAN, s.nans), s.nans > 0.0);
}

fn max_unpack(p: vec2<f32>) -> MaxAcc {
    if (p.x == MAX_NAN) {
        return MaxAcc(0.0, 0.0, p.y, 0.0);
    }
    if (p.x == MAX_INF) {
        return MaxAcc(0.0, 0.0, 0.0, p.y);
    }
    return MaxAcc(p.x, p.y, 0.0, 0.0);
}

// Two lanes' packed maxima joined: NaN wins (the NaN counts add), then an
// infinity (the infinite counts add), else the larger, the counts adding at
// a tie.
fn max_merge(p: vec2<f32>, q: vec2<f32>) -> vec2<f32> {
    let pn = p.x == MAX_NAN;
    let qn = q.x == MAX_NAN;
    if (pn || qn) {
        return vec2(MAX_NAN, select(0.0, p.y, pn) + select(0.0, q.y, qn));
    }
    let pi = p.x == MAX_INF;
    let qi = q.x == MAX_INF;
    if (pi || qi) {
        return vec2(MAX_INF, select(0.0, p.y, pi) + select(0.0, q.y, qi));
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
// finite nonzero vmax has its sum used (see triplet_margin): a zero, NaN or
// infinite one gives 0 without computing, and then so does every v_k, which
// is finite for a finite vmax.
fn scaled_pow(v: Ext, vmax: Ext) -> f32 {
    if (vmax.k != K_FIN || is_zero(vmax.v) || v.k != K_FIN) {
        return 0.0;
    }
    let r = abs(v.v) / vmax.v;
    if (r == 0.0) {
        return 0.0;
    }
    // r in (0, 1] and p > 0: y <= 0, beyond f32 only for an absurd p (e^y =
    // 0), told from its bits.
    let y = params.p * ln_acc(r);
    return select(exp_acc(select(y, 0.0, !is_fin(y))), 0.0, !is_fin(y));
}

// d |v|_p / d v_k as torch's norm_backward (see norm_grad in src/cpu/pairs.rs),
// with its kind, for the component v and the norm's `d` (extended reals: an
// infinite or NaN component makes the norm infinite or NaN). `d` is the norm,
// except for the general p: there the largest finite |v_k| (or the kind),
// with `aux` = ln sum (|v_k| / d)^p; for p = inf, `aux` components share the
// gradient.
fn norm_grad(ve: Ext, d: Ext, aux: f32) -> Ext {
    switch NORM {
        case NORM_INF: {
            // aux >= 1 wherever the term is taken.
            let at_max = ext_eq(ext_abs(ve), d) || ve.k == K_NAN;
            return fin(select(0.0, ext_sign(ve) / max(aux, 1.0), at_max));
        }
        case NORM_1: {
            return fin(ext_sign(ve));
        }
        case NORM_2: {
            return ext_pick(ext_over(ve, d), fin(0.0), d.k == K_FIN && is_zero(d.v));
        }
        default: {
            let vz = ve.k == K_FIN && is_zero(ve.v);
            // A NaN norm: every nonzero component's term is NaN.
            if (d.k == K_NAN) {
                return ext_pick(ext_kind(K_NAN), fin(0.0), vz);
            }
            if (vz || (d.k == K_FIN && is_zero(d.v))) {
                return fin(0.0);
            }
            // An infinite v_k (then so is the norm): inf^(p-1) / inf^(p-1).
            if (ve.k != K_FIN) {
                return ext_kind(K_NAN);
            }
            let sign = fin(ext_sign(ve));
            // A finite v_k under an infinite norm: |v_k|^(p-1) / inf^(p-1), 0
            // for p > 1, an infinity for p < 1.
            if (d.k == K_PINF) {
                return ext_mul(sign, ext_pick(fin(0.0), ext_kind(K_PINF), params.p < 1.0));
            }
            // |v_k|^(p-1) / |v|_p^(p-1) with |v|_p = vmax S^(1/p): as one
            // exponential of small arguments, so that no power overflows and
            // a single component gives exactly sign(v_k). A ratio that
            // underflows to 0 takes its log as a difference of logs. The
            // exponent is finite; its exponential may overflow (p < 1), told
            // from its bits.
            let a = abs(ve.v);
            let ratio = a / d.v;
            var lr = 0.0;
            if (is_zero(ratio)) {
                lr = ln_acc(a) - ln_acc(d.v);
            } else {
                lr = ln_acc(ratio);
            }
            let q = params.p - 1.0;
            return ext_mul(sign, ext(exp_acc(q * lr - q / params.p * aux)));
        }
    }
}

// A norm the f32 gradient loop divides by: finite and nonzero.
fn norm_usable(d: Ext) -> bool {
    return d.k == K_FIN && !is_zero(d.v);
}

// The norm, or 1 where it is not usable (the loop's results are then
// overwritten): no division meets a zero or an infinity.
fn norm_or_1(d: Ext) -> f32 {
    return select(1.0, d.v, norm_usable(d));
}

// a - p + eps, a - n + eps and p - n + eps for one component of each loaded
// tensor, with IEEE's kinds (inf - inf is NaN; a difference of finite values
// may overflow), and the kinds of their magnitudes (`kind_flag`).
struct Diffs {
    ap: Ext,
    an: Ext,
    pn: Ext,
    kinds: vec3<u32>,
}

// The common case, told from the bits: all three below 2^126, where no
// difference overflows.
fn common3(a: f32, p: f32, n: f32) -> bool {
    let m = max(max(bitcast<u32>(a) & 0x7fffffffu, bitcast<u32>(p) & 0x7fffffffu), bitcast<u32>(n) & 0x7fffffffu);
    return m < 0x7e800000u;
}

// The three differences of the common case (`diffs`'s), or 0 for the others,
// computed from zeros: branch-free, so that the loops that take the common
// case run nothing else per value (a CPU adapter runs both sides of every
// branch), and never from an infinity.
fn fast_diffs(a: f32, p: f32, n: f32, usual: bool) -> vec3<f32> {
    let eps = params.eps;
    let a0 = select(0.0, a, usual);
    let p0 = select(0.0, p, usual);
    let n0 = select(0.0, n, usual);
    return select(vec3(0.0), vec3(a0 - p0 + eps, a0 - n0 + eps, p0 - n0 + eps), usual);
}

fn diffs(a: f32, p: f32, n: f32) -> Diffs {
    let eps = params.eps;
    if (common3(a, p, n)) {
        return Diffs(fin(a - p + eps), fin(a - n + eps), fin(p - n + eps), vec3(0u));
    }
    let ae = ext(a);
    let pe = ext(p);
    let ne = ext(n);
    let e = fin(eps);
    let ap = ext_add(ext_sub(ae, pe), e);
    let an = ext_add(ext_sub(ae, ne), e);
    let pn = ext_add(ext_sub(pe, ne), e);
    return Diffs(ap, an, pn, vec3(kind_flag(ext_abs(ap).k), kind_flag(ext_abs(an).k), kind_flag(ext_abs(pn).k)));
}

// max(margin + gap, 0), NaN staying NaN.
fn hinge(gap: Ext) -> Ext {
    return ext_clamp_min(ext_add(fin(params.margin), gap), 0.0);
}

// TripletMarginLoss: max(margin + d(a, p) - d(a, n), 0), d(u, w) = |u - w + eps|_p,
// with swap d(a, n) -> min(d(a, n), d(p, n)).
fn triplet_margin(seat: Seat, lid: u32) -> Ext {
    let r = seat.row;
    let base = params.skip + r * params.dim;
    var l = fin(0.0);
    // For GRAD: the norms and their `aux` (see norm_grad), and whether d(p, n)
    // is the negative distance or ties with d(a, n).
    var d_ap = fin(0.0);
    var d_an = fin(0.0);
    var d_pn = fin(0.0);
    var aux_ap = 1.0;
    var aux_an = 1.0;
    var aux_pn = 1.0;
    var use_pn = false;
    var tie = false;
    if (NORM == NORM_INF) {
        var m_ap = max_new();
        var m_an = max_new();
        var m_pn = max_new();
        for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let p = ld_second(base + k);
            let n = ld_third(base + k);
            let v = diffs(a, p, n);
            m_ap = max_add(m_ap, v.ap);
            m_an = max_add(m_an, v.an);
            if (SWAP) {
                m_pn = max_add(m_pn, v.pn);
            }
        }
        let m = row_max3(lid, m_ap, m_an, m_pn);
        d_ap = max_norm(m.ap);
        d_an = max_norm(m.an);
        d_pn = max_norm(m.pn);
        aux_ap = max_count(m.ap);
        aux_an = max_count(m.an);
        aux_pn = max_count(m.pn);
        // torch.min(d(a, n), d(p, n)) before the difference: inf - min(inf, x)
        // is inf, where the larger of inf - inf and inf - x would be NaN. A
        // NaN d(p, n) is the minimum; a NaN d(a, n) compares with nothing.
        use_pn = SWAP && (d_pn.k == K_NAN || ext_lt(d_pn, d_an));
        tie = SWAP && ext_eq(d_pn, d_an);
        l = hinge(ext_sub(d_ap, ext_pick(d_an, d_pn, use_pn)));
    } else {
        // (s_ap, s_an, ds_an, ds_pn) and (s_pn, ...), of the finite
        // components; the kinds of the others (ap, an, pn). A power that
        // overflowed makes its sums infinite and a difference sum maybe NaN
        // (inf - inf), told from their bits: the gap then takes the plain
        // difference of the distances.
        var sums = pw_new();
        var sums_pn = pw_new();
        var kinds = vec3(0u);
        let scaled = GRAD && NORM == NORM_P;
        var m_ap = max_new();
        var m_an = max_new();
        var m_pn = max_new();
        // The common values (`common3`) in blocks of BLOCK per lane, each
        // block's sum joining `sums` once; the others add 0 here, counted in
        // `rare`, and a loop of their own adds them below.
        var rare = 0u;
        var k = seat.lane;
        while (k < seat.len) {
            var block = vec4(0.0);
            var block_pn = 0.0;
            for (var j = 0u; j < BLOCK && k < seat.len; j = j + 1u) {
                let a = ld_input(base + k);
                let p = ld_second(base + k);
                let n = ld_third(base + k);
                let usual = common3(a, p, n);
                rare = rare + select(1u, 0u, usual);
                let v = fast_diffs(a, p, n, usual);
                if (scaled) {
                    // A rare value's 0 here leaves the maximum as it is
                    // (its count, which the general p does not use, aside).
                    m_ap = max_add(m_ap, fin(v.x));
                    m_an = max_add(m_an, fin(v.y));
                    m_pn = max_add(m_pn, fin(v.z));
                }
                let t_ap = pow_p(v.x);
                let t_an = pow_p(v.y);
                var t_pn = 0.0;
                if (SWAP) {
                    t_pn = pow_p(v.z);
                    block_pn = block_pn + t_pn;
                }
                block = block + vec4(t_ap, t_an, t_ap - t_an, t_ap - t_pn);
                k = k + seat.lanes;
            }
            pw_join(&sums, block);
            if (SWAP) {
                pw_join(&sums_pn, vec4(block_pn, 0.0, 0.0, 0.0));
            }
        }
        // The rare values: where a lane met none, one pass of this loop,
        // masked off.
        for (var k = seat.lane; rare > 0u && k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let p = ld_second(base + k);
            let n = ld_third(base + k);
            if (!common3(a, p, n)) {
                let v = diffs(a, p, n);
                if (scaled) {
                    m_ap = max_add(m_ap, v.ap);
                    m_an = max_add(m_an, v.an);
                    m_pn = max_add(m_pn, v.pn);
                }
                // The finite parts' powers (0 for the others, whose kinds
                // join `kinds`).
                let t_ap = pow_p(v.ap.v);
                let t_an = pow_p(v.an.v);
                var t_pn = 0.0;
                if (SWAP) {
                    t_pn = pow_p(v.pn.v);
                    pw_add(&sums_pn, vec4(t_pn, 0.0, 0.0, 0.0));
                }
                kinds = kinds | v.kinds;
                pw_add(&sums, vec4(t_ap, t_an, t_ap - t_an, t_ap - t_pn));
            }
        }
        let sum2 = row_merge(lid, MERGE_SUM, Two(pw_total(&sums), pw_total(&sums_pn)));
        let all = row_kinds(lid, kinds);
        let tot = sum2.a;
        let sap = sum_ext(tot.x, all.x);
        let san = sum_ext(tot.y, all.y);
        let spn = sum_ext(sum2.b.x, all.z);
        // torch.min(d(a, n), d(p, n)) first (the p-th powers order as the
        // distances do), then the gap to the smaller one.
        use_pn = SWAP && (spn.k == K_NAN || ext_lt(spn, san));
        tie = SWAP && ext_eq(spn, san);
        if (use_pn) {
            l = hinge(distance_gap(sap, spn, ext(tot.w)));
        } else {
            l = hinge(distance_gap(sap, san, ext(tot.z)));
        }
        if (GRAD && NORM == NORM_2) {
            d_ap = ext_sqrt(sap);
            d_an = ext_sqrt(san);
            d_pn = ext_sqrt(spn);
        }
        if (scaled) {
            // The sums of |v_k|^p accurate enough for the gradient: scaled by
            // the largest finite |v_k| (one more walk over the row), each
            // power to about an ulp. A NaN or infinite norm takes its kind
            // (norm_grad), and its scaled sum goes unused.
            let m = row_max3(lid, m_ap, m_an, m_pn);
            d_ap = max_norm(m.ap);
            d_an = max_norm(m.an);
            d_pn = max_norm(m.pn);
            var q = pw_new();
            for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
                let a = ld_input(base + k);
                let p = ld_second(base + k);
                let n = ld_third(base + k);
                let v = diffs(a, p, n);
                var q_pn = 0.0;
                if (SWAP) {
                    q_pn = scaled_pow(v.pn, d_pn);
                }
                pw_add(&q, vec4(scaled_pow(v.ap, d_ap), scaled_pow(v.an, d_an), q_pn, 0.0));
            }
            let qt = row_sum(lid, pw_total(&q));
            // A zero norm's aux goes unused too (norm_grad gives 0).
            aux_ap = select(0.0, ln_acc(qt.x), d_ap.k == K_FIN);
            aux_an = select(0.0, ln_acc(qt.y), d_an.k == K_FIN);
            aux_pn = select(0.0, ln_acc(qt.z), d_pn.k == K_FIN);
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
        var ge = fin(0.0);
        if (live(seat) && ext_lt(fin(0.0), l)) {
            ge = row_upstream(r);
        }
        // NORM_1 and NORM_2 in f32 where the row allows (`fast`): its norms
        // finite and nonzero, its upstream finite and below 2^64 (a gradient
        // is the upstream times at most 2: no overflow), and the value
        // common (`common3`). That loop stores every value's gradient; the
        // next one stores the others' again, the reference's way: where
        // none of a lane's values needs it, one pass, masked off.
        var fast = false;
        var redo = 1u;
        if (NORM == NORM_1 || NORM == NORM_2) {
            fast = ge.k == K_FIN && abs(ge.v) < 0x1p64f && norm_usable(d_ap) && norm_usable(d_an)
                && (!SWAP || norm_usable(d_pn));
            redo = select(1u, 0u, fast);
            let dd = vec3(norm_or_1(d_ap), norm_or_1(d_an), norm_or_1(d_pn));
            for (var k = seat.lane; k < seat.len; k = k + seat.lanes) {
                let a = ld_input(base + k);
                let p = ld_second(base + k);
                let n = ld_third(base + k);
                let usual = common3(a, p, n);
                redo = redo + select(1u, 0u, usual);
                let v = fast_diffs(a, p, n, usual);
                var g = vec3(0.0);
                if (NORM == NORM_1) {
                    g = vec3(ext_sign(fin(v.x)), ext_sign(fin(v.y)), ext_sign(fin(v.z)));
                } else {
                    g = v / dd;
                }
                let an = w_an * g.y;
                var pn = 0.0;
                if (SWAP) {
                    pn = w_pn * g.z;
                }
                grad_input[base + k] = ge.v * (g.x - an);
                grad_second[base + k] = ge.v * (-g.x - pn);
                grad_third[base + k] = ge.v * (an + pn);
            }
        }
        for (var k = seat.lane; redo > 0u && k < seat.len; k = k + seat.lanes) {
            let a = ld_input(base + k);
            let p = ld_second(base + k);
            let n = ld_third(base + k);
            if (fast && common3(a, p, n)) {
                continue;
            }
            let v = diffs(a, p, n);
            let n_ap = norm_grad(v.ap, d_ap, aux_ap);
            let n_an = norm_grad(v.an, d_an, aux_an);
            var n_pn = fin(0.0);
            if (SWAP) {
                n_pn = norm_grad(v.pn, d_pn, aux_pn);
            }
            // IEEE on the kinds: a NaN or infinite term reaches every sum it
            // meets, also at weight 0. The weights are 0, 0.5 or 1: their
            // products are exact, whatever fma contraction does.
            let an = ext_mul(fin(w_an), n_an);
            let pn = ext_mul(fin(w_pn), n_pn);
            grad_input[base + k] = ext_f32(ext_mul(ge, ext_sub(n_ap, an)));
            grad_second[base + k] = ext_f32(ext_mul(ge, ext_sub(ext_neg(n_ap), pn)));
            grad_third[base + k] = ext_f32(ext_mul(ge, ext_add(an, pn)));
        }
    }
    return l;
}

// The loss of the seat's row, on every lane of it, as the kind the drivers
// store. Every invocation of a workgroup calls it (with a seat past the last
// row if need be): the joins inside may wait for all of them.
fn item(seat: Seat, lid: u32) -> Ext {
    switch LOSS {
        case COSINE_EMBEDDING: { return cosine_embedding(seat, lid); }
        case TRIPLET_MARGIN: { return triplet_margin(seat, lid); }
        // Unreachable (the host sets LOSS from loss_id): a NaN kind, stored
        // as NaN, if it ever were.
        default: { return ext_kind(K_NAN); }
    }
}
