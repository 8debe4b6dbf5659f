// Softmax-row losses (cross_entropy, nll, softmax_focal) over input
// (N, C, inner): row r = (r / inner, ., r % inner), logit (r, c) at
// input[(n * C + c) * inner + s]. Each row's logits are read once, through an
// online log-sum-exp; rows are fused with their reduction into (loss,
// denominator) partials that finalize.wgsl combines, or written as items with
// `write_items` set.
//
// A dispatch covers a slice of whole batch entries (inputs may be longer than
// one binding). Its bindings start at the 256-byte boundary at or before the
// slice's first logit, target and item; `x_skip`, `t_skip` and `o_skip` say
// how far in the slice starts. Its partials start at `partial_base` in the
// scratch that all slices share.
//
// With GRAD the pass also writes d loss / d logit for every logit: a second
// walk over the row once its log-sum-exp is known, scaled by the upstream and
// the reduction.
//
// The variants (`RowsVariant` in src/gpu/rows.rs says when each is used) differ
// in how many invocations share a row:
// - `main`: one thread per row (partials per workgroup);
// - `nll_rows`: nll only reads one logit per row, so a thread takes NLL_ROWS;
// - `group_shared`: `lanes` invocations per row, WG / lanes rows per
//   workgroup, states merged by a tree in workgroup memory;
// - `row_subgroup` (rows_subgroup.wgsl): a subgroup per row, merged with
//   subgroup operations;
// - `wide`: a workgroup per row (a partial per row);
// - `split_scan` + `split_finish`: `chunks` workgroups per row, whose states
//   meet in `states` before the second pass finishes the row.
// Mesa's llvmpipe stops every shader invocation after 65 535 loop iterations
// in total, so no invocation may walk a 10^5-class row alone: the host keeps
// each variant to the rows it walks in well under that.
//
// Params is `RowsParams` in src/gpu/rows.rs; the test
// gpu::contract::params_match_the_shaders checks that they agree.
struct Params {
    rows: u32,
    classes: u32,
    inner: u32,
    has_weight: u32,
    write_items: u32,
    groups_x: u32,
    // label_smoothing (cross_entropy).
    eps: f32,
    // gamma (softmax_focal).
    gamma: f32,
    // The class index of ignored rows.
    ignore: i32,
    x_skip: u32,
    t_skip: u32,
    o_skip: u32,
    partial_base: u32,
    // The upstream's scale: 0: none; 1: 1 / divisor; 2: 1 / out[d_at] (the
    // summed class weights of the rows that are not ignored).
    scale_mode: u32,
    d_at: u32,
    divisor: f32,
    // Rows per workgroup of `row_subgroup`.
    per_group: u32,
    // Invocations per row of `group_shared`: a power of two up to WG.
    lanes: u32,
    // `split_*`: classes per workgroup, workgroups per row, and where in
    // `states` the slice's states start.
    chunk: u32,
    chunks: u32,
    states_at: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Float tensors as words of their dtype (`element`, common.wgsl), which the
// `DTYPE_<binding>` override of each names. Targets: class indices as i32
// (ignored rows hold `ignore`), or probability targets of the input's shape.
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> weight: array<u32>;
// One value per row of the slice (from `o_skip`), or a single one for all.
@group(0) @binding(3) var<storage, read> upstream: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The input's layout, from `x_skip`.
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;
// `split_*`: STATE_LEN values per (row, chunk), from `states_at`.
@group(0) @binding(6) var<storage, read_write> states: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

override GRAD: bool = false;
// Label smoothing (params.eps > 0) as a pipeline constant: without it the
// per-logit factors fold away (a CPU adapter would run their loads and
// arithmetic for every logit, masked off, were it a uniform's test).
override SMOOTHING: bool = false;
override DTYPE_0: u32 = DT_F32;
override DTYPE_1: u32 = DT_F32;
override DTYPE_2: u32 = DT_F32;

fn ld_input(i: u32) -> f32 { return element(input[word_of(i, DTYPE_0)], i, DTYPE_0); }
fn ld_target(i: u32) -> f32 { return element(targets[word_of(i, DTYPE_1)], i, DTYPE_1); }
fn ld_weight(i: u32) -> f32 { return element(weight[word_of(i, DTYPE_2)], i, DTYPE_2); }

// Loss ids, as `loss_id` in src/gpu/rows.rs gives them (checked by the test
// gpu::contract::loss_ids_match_the_shaders).
override LOSS: u32 = 0u;
const CROSS_ENTROPY: u32 = 0u;
const CROSS_ENTROPY_PROB: u32 = 1u;
const NLL: u32 = 2u;
const SOFTMAX_FOCAL: u32 = 3u;

// Classes per partial state in `main`: two-level sums keep the rounding error
// of a 16 000-class row near that of a few hundred classes.
const CHUNK: u32 = 64u;

// The online log-sum-exp of part of a row, with every accumulated term >= 0 so
// that nothing cancels:
//   m = max finite logit (valid once SEEN is set),
//   r = sum of exp(x_c - m) over the classes except one arg-max (s - 1, so
//       that ln(s) = log1p(r) keeps its precision when one class dominates),
//   a = sum of t_c (m - x_c) and b = sum of t_c, for the class factors t_c
//       (w_c, or w_c times the smoothed probability target).
// Then sum_c t_c (lse - x_c) = b ln(s) + a. No field is ever inf or NaN (see
// `Ext` in common.wgsl); the flags carry what the non-finite inputs did:
// a -inf logit adds t_c * inf to a (A_PINF, A_NINF, or A_NAN for t_c = 0, as
// the reference's 0 * inf) and its t_c to b, which the gradient needs whole;
// a NaN or +inf logit, or a non-finite factor, makes the whole row NaN
// (POISON), as the reference's log_softmax does.
const SEEN: u32 = 1u;
const POISON: u32 = 2u;
const A_PINF: u32 = 4u;
const A_NINF: u32 = 8u;
const A_NAN: u32 = 16u;

struct State {
    m: f32,
    r: f32,
    a: f32,
    b: f32,
    f: u32,
}

fn empty() -> State {
    return State(-FLT_MAX, 0.0, 0.0, 0.0, 0u);
}

fn seen(st: State) -> bool {
    return (st.f & SEEN) != 0u;
}

// One logit x with its factor into the state. Written with selects, not
// branches: a CPU adapter runs every side of a branch for every logit, and
// the two sides of the running maximum would each take an exp. exp(-|x - m|)
// is exp(m - x) for a new maximum and exp(x - m) otherwise, bit for bit.
fn push(st: State, x: f32, te: Ext) -> State {
    let kx = kind_of(x);
    let poison = kx == K_NAN || kx == K_PINF || te.k != K_FIN;
    let live = kx == K_FIN && !poison;
    let ninf = kx == K_NINF && !poison;
    let t = te.v;
    let s = seen(st);
    // x where it is a finite logit of a seen state, else m (d = 0): nothing
    // below meets an infinity or the initial -FLT_MAX.
    let xf = select(st.m, x, live && s);
    let d = abs(xf - st.m);
    let e = exp(-d);
    let up = xf > st.m;
    var o = st;
    o.r = select(st.r, select(st.r + e, (st.r + 1.0) * e, up), live && s);
    o.m = select(st.m, select(x, max(st.m, xf), s), live);
    o.f = st.f | select(0u, SEEN, live) | select(0u, POISON, poison);
    // a, b and their flags only where a loss reads them (its factors are 0
    // otherwise): a pipeline constant, so that rows without factors do not
    // pay for them per logit.
    if (uses_factors()) {
        o.a = select(st.a, st.a + select(t * d, st.b * d, up), live);
        o.b = select(st.b, st.b + t, live || ninf);
        let ninf_flag = select(select(A_NAN, A_NINF, t < 0.0), A_PINF, t > 0.0);
        o.f = o.f | select(0u, ninf_flag, ninf);
    }
    return o;
}

fn merge(p: State, q: State) -> State {
    let f = p.f | q.f;
    if (!seen(q)) {
        return State(p.m, p.r, p.a + q.a, p.b + q.b, f);
    }
    if (!seen(p)) {
        return State(q.m, q.r, p.a + q.a, p.b + q.b, f);
    }
    var hi = p;
    var lo = q;
    if (q.m > p.m) {
        hi = q;
        lo = p;
    }
    let d = hi.m - lo.m;
    return State(hi.m, hi.r + (lo.r + 1.0) * exp(-d), hi.a + lo.a + lo.b * d, hi.b + lo.b, f);
}

// Whether the row's log-sum-exp is NaN: a NaN or +inf logit, or every logit
// -inf (an empty row of no classes has ln s = 0).
fn poisoned(st: State) -> bool {
    return (st.f & POISON) != 0u || (!seen(st) && params.classes > 0u);
}

// a with the t_c * inf terms of the -inf logits.
fn a_ext(st: State) -> Ext {
    var e = ext(st.a);
    if ((st.f & A_PINF) != 0u) {
        e = ext_add(e, ext_kind(K_PINF));
    }
    if ((st.f & A_NINF) != 0u) {
        e = ext_add(e, ext_kind(K_NINF));
    }
    if ((st.f & A_NAN) != 0u) {
        e = ext_add(e, ext_kind(K_NAN));
    }
    return e;
}

fn class_weight(c: u32) -> f32 {
    if (params.has_weight != 0u) {
        return ld_weight(c);
    }
    return 1.0;
}

// The factor t_c of class c at logit `j` of the slice (see State): the class
// weight for label smoothing, times the smoothed probability for probability
// targets; a weight or target that is not finite only as its kind.
fn factor(c: u32, j: u32) -> Ext {
    let w = ext(class_weight(c));
    if (LOSS == CROSS_ENTROPY_PROB) {
        let t = ext(ld_target(params.t_skip + j));
        let smoothed = ext_add(ext_mul(t, fin(1.0 - params.eps)), fin(params.eps / f32(params.classes)));
        return ext_mul(w, smoothed);
    }
    return w;
}

// Row codes of `target_class` besides a class index.
const IGNORED: i32 = -1;
const BAD: i32 = -2;

// The target class of row r: its index, IGNORED, or BAD for an index outside
// [0, C) (the device path does not range-check indices on the host; the row
// must not read out of bounds nor pass for a plausible loss). Probability
// targets have no class: IGNORED, which `skipped` never sees for them.
fn target_class(r: u32) -> i32 {
    if (LOSS == CROSS_ENTROPY_PROB) {
        return IGNORED;
    }
    let y = bitcast<i32>(targets[params.t_skip + r]);
    if (y == params.ignore) {
        return IGNORED;
    }
    if (y < 0 || u32(y) >= params.classes) {
        return BAD;
    }
    return y;
}

// Whether row class y has no loss: an ignored or bad class index.
fn skipped(y: i32) -> bool {
    return LOSS != CROSS_ENTROPY_PROB && y < 0;
}

// Whether a row's logits are read: for its loss, or, for an ignored row's
// gradient, to learn whether its log-softmax is NaN. The reference's backward
// multiplies an ignored row's zero by the row's softmax, so a row with a NaN
// or +inf logit, or of -inf logits only, gives NaN there (nll has no softmax).
fn scans(y: i32) -> bool {
    return LOSS != NLL && (!skipped(y) || (GRAD && y == IGNORED));
}

// Whether the loss sums over every class of a row: smoothing and probability
// targets. Otherwise only the target's weight enters, and the weights of the
// other classes (not finite ones too) must not touch the row.
fn uses_factors() -> bool {
    return LOSS == CROSS_ENTROPY_PROB || (LOSS == CROSS_ENTROPY && SMOOTHING);
}

// The factor of class c at logit j in row class y's state: none where the
// loss does not use it, and for an ignored row, whose gradient does not meet
// the class weights.
fn row_factor(c: u32, j: u32, y: i32) -> Ext {
    if (skipped(y) || !uses_factors()) {
        return fin(0.0);
    }
    return factor(c, j);
}

// A row's loss and denominator, non-finite values as kinds until the store.
struct Item {
    l: Ext,
    d: Ext,
}

// The item of a skipped row: nothing for an ignored one, NaN for a bad index,
// so that the mean is NaN as well.
fn skipped_loss(y: i32) -> Item {
    if (y == BAD) {
        return Item(ext_kind(K_NAN), ext_kind(K_NAN));
    }
    return Item(fin(0.0), fin(0.0));
}

// The item of a row from its complete state, its target class y (unused for
// probability targets) and the target's logit x_y.
fn finish(st: State, y: i32, xy: f32) -> Item {
    var den = fin(1.0);
    if (LOSS != CROSS_ENTROPY_PROB) {
        den = ext(class_weight(u32(y)));
    }
    if (poisoned(st)) {
        return Item(ext_kind(K_NAN), den);
    }
    // log(s) = lse - m >= 0.
    let ls = log1p(st.r);
    let uniform_part = ext_add(ext(st.b * ls), a_ext(st));
    if (LOSS == CROSS_ENTROPY_PROB) {
        return Item(uniform_part, den);
    }
    // -log p_y = lse - x_y: +inf for a -inf target logit (NaN and +inf ones
    // poison the row).
    var ce = ext_kind(K_PINF);
    if (is_fin(xy)) {
        ce = fin(ls + (st.m - xy));
    }
    if (LOSS == SOFTMAX_FOCAL) {
        // 1 - p_y without cancellation when p_y is near 1.
        let u = select(-expm1(-ce.v), 1.0, ce.k == K_PINF);
        return Item(ext_mul(ext_mul(den, fin(pow_gamma(u, params.gamma))), ce), den);
    }
    var l = ext_mul(den, ce);
    // Only with smoothing: its sum over all classes turns a -inf logit into +inf.
    if (params.eps > 0.0) {
        let spread = ext_mul(fin(params.eps / f32(params.classes)), uniform_part);
        l = ext_add(ext_mul(fin(1.0 - params.eps), l), spread);
    }
    return Item(l, den);
}

// An item as the workgroup reduction adds it: the finite parts, then counts
// of the kinds (loss +inf, 512 x loss -inf; loss NaN, 512 x denominator not
// finite). Counts of at most WG rows stay exact integers in f32 in any order.
fn pack(it: Item) -> vec4<f32> {
    let z = select(0.0, 1.0, it.l.k == K_PINF) + select(0.0, 512.0, it.l.k == K_NINF);
    let w = select(0.0, 1.0, it.l.k == K_NAN) + select(0.0, 512.0, it.d.k != K_FIN);
    return vec4(it.l.v, it.d.v, z, w);
}

// The sum of packed items, as IEEE arithmetic would have added them.
fn unpack(t: vec4<f32>) -> Item {
    let z = u32(t.z);
    let w = u32(t.w);
    var l = fin(t.x);
    if (z % 512u > 0u) {
        l = ext_add(l, ext_kind(K_PINF));
    }
    if (z / 512u > 0u) {
        l = ext_add(l, ext_kind(K_NINF));
    }
    if (w % 512u > 0u) {
        l = ext_kind(K_NAN);
    }
    var d = fin(t.y);
    if (w / 512u > 0u) {
        d = ext_kind(K_NAN);
    }
    return Item(l, d);
}

// Index of logit (r, 0) in the slice; class c is `inner` further along per class.
fn row_base(r: u32) -> u32 {
    return (r / params.inner) * params.classes * params.inner + r % params.inner;
}

// The backward, as autograd takes it through log_softmax (conventions on the
// CPU twin in src/cpu/rows.rs): with p_k = exp((x_k - m) - ln s) — never
// exp(x_k - lse), whose lse carries an ulp of m (1e-3 at |m| = 1e4),
//   d loss / d x_k = p_k * (k == y ? py : p) - b * t_k + (k == y ? ey : 0),
// t_k being the class factor (see State). The coefficients are per row; they
// carry the upstream's kind (an infinite or NaN upstream, or g / 0 for a mean
// over zero weights) as `Ext`, so that no gradient computes with inf or NaN.
struct Coef {
    m: f32,
    ls: f32,
    p: Ext,
    py: Ext,
    b: Ext,
    ey: Ext,
    // Every gradient of the row is NaN.
    nan: bool,
}

fn nan_coef() -> Coef {
    let z = fin(0.0);
    return Coef(0.0, 0.0, z, z, z, z, true);
}

// The upstream of row r, scaled by the reduction.
fn row_scale(r: u32) -> Ext {
    if (params.write_items != 0u) {
        if (arrayLength(&upstream) > 1u) {
            return ext(upstream[params.o_skip + r]);
        }
        return ext(upstream[0]);
    }
    let g = ext(upstream[0]);
    if (params.scale_mode == 1u) {
        return ext_div(g, ext(params.divisor));
    }
    if (params.scale_mode == 2u) {
        let d = ext(out[params.d_at]);
        // softmax_focal defines its mean over a zero total weight with a zero
        // gradient; elsewhere g / 0 meets the zero weights: NaN, as in PyTorch.
        if (LOSS == SOFTMAX_FOCAL && d.k == K_FIN && d.v == 0.0) {
            return fin(0.0);
        }
        return ext_div(g, d);
    }
    return g;
}

// Whether the float64 reference's log p_y is exactly 0: y the arg-max and
// lse = m + ln(1 + r) rounding to m, in 1 + r or in the sum with m. Focal's
// u = 1 - p_y is then 0 there, as in PyTorch, though float32 still resolves it.
fn saturated(st: State, xy: f32) -> bool {
    if (xy != st.m) {
        return false;
    }
    // The reference's 1 + r is 1 + k 2^-52, k = r 2^52 rounded to even: 1 for
    // r <= 2^-53 (also for an r that hardware flushed to zero).
    let k = round(st.r * 4503599627370496.0);
    if (k == 0.0) {
        return true;
    }
    if (st.m == 0.0) {
        return false;
    }
    // m + ln(1 + r) rounds to m where the log is at most half an ulp of m.
    // For a small r that log is just below k 2^-52, not ln(1 + r): at m = 3.5
    // an r of 1.04 2^-52 still vanishes. (The reference rounds 1 + r term by
    // term; several classes each near 2^-53 are not followed.)
    let half_ulp = ldexp(1.0, frexp(st.m).exp - 54);
    if (st.r < 9.5367431640625e-7) {
        return k * 2.220446049250313e-16 <= half_ulp;
    }
    return log1p(st.r) <= half_ulp;
}

fn nll_coef(y: i32, s: Ext) -> Coef {
    let z = fin(0.0);
    return Coef(0.0, 0.0, z, z, z, ext_mul(ext_neg(ext(class_weight(u32(y)))), s), false);
}

// The coefficients of a row from its complete state, for upstream s.
fn coef(st: State, y: i32, xy: f32, s: Ext) -> Coef {
    if (poisoned(st)) {
        return nan_coef();
    }
    let ls = log1p(st.r);
    if (LOSS == CROSS_ENTROPY_PROB) {
        let sb = ext_mul(s, ext(st.b));
        return Coef(st.m, ls, sb, sb, s, fin(0.0), false);
    }
    let wy = ext(class_weight(u32(y)));
    // -log p_y, and 1 - p_y without cancellation; a -inf target logit has
    // -log p_y = +inf, u = 1.
    let inf_ce = kind_of(xy) == K_NINF;
    var ce = 0.0;
    var u = 1.0;
    if (!inf_ce) {
        ce = ls + (st.m - xy);
        u = -expm1(-ce);
    }
    if (LOSS == SOFTMAX_FOCAL) {
        let gamma = params.gamma;
        // At -log p_y = +inf the reference's exp(-ce) * ce is 0 * inf: NaN,
        // but for gamma = 0, where pow's backward is 0 and never meets it.
        if (inf_ce && gamma != 0.0) {
            return nan_coef();
        }
        // u is 0 where the float64 reference's is: where its log p_y is 0,
        // and below 2^-126, which it cannot resolve either (its u is 0 or
        // above 2^-53 when y is the arg-max, above 1/2 otherwise). Decided
        // from the bits, so that hardware that flushes a subnormal u to zero
        // takes the same branch, and u^(gamma - 1) never meets a flushed u.
        let u_zero = !inf_ce && (saturated(st, xy) || (bitcast<u32>(u) & 0x7f800000u) == 0u);
        if (u_zero) {
            ce = 0.0;
            u = 0.0;
        }
        // gamma u^(gamma - 1) is infinite at u = 0 for 0 < gamma < 1 and
        // meets log p_y = 0: NaN, as in PyTorch.
        if (u_zero && gamma > 0.0 && gamma < 1.0) {
            return nan_coef();
        }
        // At u = 0, u^(gamma - 1) is 1 for gamma = 1 and 0 above (gamma >= 0).
        var focal = 0.0;
        if (u_zero) {
            focal = select(0.0, 1.0, gamma == 1.0);
        } else if (gamma != 0.0) {
            focal = gamma * pow_gamma(u, gamma - 1.0);
        }
        // d loss / d log p_y; the softmax's backward splits it.
        let dl = -pow_gamma(u, gamma) - focal * exp(-ce) * ce;
        let gy = ext_mul(ext_mul(s, wy), fin(dl));
        return Coef(st.m, ls, ext_mul(fin(-1.0), gy), fin(0.0), fin(0.0), target_term(gy, fin(u)), false);
    }
    // Cross entropy: (1 - eps) on the target, eps / C spread by class weight.
    let a = ext_mul(ext_mul(s, fin(1.0 - params.eps)), wy);
    var b = fin(0.0);
    if (params.eps > 0.0) {
        b = ext_mul(s, fin(params.eps / f32(params.classes)));
    }
    let bb = ext_mul(b, ext(st.b));
    return Coef(st.m, ls, ext_add(a, bb), bb, b, target_term(a, fin(-u)), false);
}

// The target's own term g_y (1 - p_y) of d loss / d log p_y = g_y, formed
// without cancelling. The reference's g_y - p_y g_y is NaN for an infinite
// g_y (an infinite upstream or target weight), p_y = 0 included.
fn target_term(gy: Ext, u: Ext) -> Ext {
    if (gy.k != K_FIN) {
        return ext_kind(K_NAN);
    }
    return ext_mul(gy, u);
}

fn logit_grad(r: u32, c: u32, y: i32, co: Coef) {
    let j = row_base(r) + c * params.inner;
    // One store, the NaN row's chosen by a select: a CPU adapter would run
    // the store of a branch for every logit, masked off or not.
    var g = fin(0.0);
    if (LOSS != NLL) {
        // In a row that is not NaN, a logit is finite or -inf (p = 0).
        let x = ld_input(params.x_skip + j);
        let f = is_fin(x);
        let p = select(0.0, exp((select(co.m, x, f) - co.m) - co.ls), f);
        g = ext_mul(fin(p), ext_pick(co.p, co.py, i32(c) == y));
        if (uses_factors()) {
            g = ext_add(g, ext_mul(ext_mul(fin(-1.0), co.b), factor(c, j)));
        }
    }
    g = ext_pick(g, ext_add(g, co.ey), i32(c) == y);
    grad[params.x_skip + j] = select(ext_f32(g), kind_bits(K_NAN), co.nan);
}

// Ignored rows pass no gradient but NaN where their log-softmax is NaN (`st`
// is their state where `scans` reads them); a bad class index gives NaN.
fn skip_grad(r: u32, c: u32, y: i32, st: State) {
    let nan = y == BAD || (scans(y) && poisoned(st));
    grad[params.x_skip + row_base(r) + c * params.inner] = select(0.0, kind_bits(K_NAN), nan);
}

// A row's complete state and its target's logit.
struct Scan {
    st: State,
    xy: f32,
}

fn scan(r: u32, y: i32) -> Scan {
    let base = row_base(r);
    var st = empty();
    var xy = 0.0;
    var c = 0u;
    while (c < params.classes) {
        let end = min(c + CHUNK, params.classes);
        var part = empty();
        for (; c < end; c = c + 1u) {
            let j = base + c * params.inner;
            let x = ld_input(params.x_skip + j);
            if (i32(c) == y) {
                xy = x;
            }
            part = push(part, x, row_factor(c, j, y));
        }
        st = merge(st, part);
    }
    return Scan(st, xy);
}

// The state of classes c0, c0 + step, ... below `end` of row r (of class y),
// in partial states of CHUNK classes as `scan` keeps them.
fn scan_part(r: u32, y: i32, c0: u32, end: u32, step: u32) -> State {
    let base = row_base(r);
    var st = empty();
    var c = c0;
    while (c < end) {
        var part = empty();
        for (var k = 0u; k < CHUNK && c < end; k = k + 1u) {
            let j = base + c * params.inner;
            part = push(part, ld_input(params.x_skip + j), row_factor(c, j, y));
            c = c + step;
        }
        st = merge(st, part);
    }
    return st;
}

// The target's logit of row r; 0 where there is none (skipped rows,
// probability targets), which no formula then reads.
fn target_logit(r: u32, y: i32) -> f32 {
    if (y < 0) {
        return 0.0;
    }
    return ld_input(params.x_skip + row_base(r) + u32(y) * params.inner);
}

// NLL reads one logit per row: its kind carries a non-finite one through.
fn nll(r: u32, y: i32) -> Item {
    let wy = ext(class_weight(u32(y)));
    let x = ext(ld_input(params.x_skip + row_base(r) + u32(y) * params.inner));
    return Item(ext_mul(fin(-1.0), ext_mul(wy, x)), wy);
}

// The item of row r from its complete state (unused by skipped rows and nll).
fn row_item(r: u32, y: i32, st: State, xy: f32) -> Item {
    if (skipped(y)) {
        return skipped_loss(y);
    }
    if (LOSS == NLL) {
        return nll(r, y);
    }
    return finish(st, y, xy);
}

// The gradients of classes c0, c0 + step, ... below `end` of row r.
fn row_grads(r: u32, y: i32, st: State, xy: f32, c0: u32, end: u32, step: u32) {
    if (skipped(y)) {
        for (var c = c0; c < end; c = c + step) {
            skip_grad(r, c, y, st);
        }
        return;
    }
    var co: Coef;
    if (LOSS == NLL) {
        co = nll_coef(y, row_scale(r));
    } else {
        co = coef(st, y, xy, row_scale(r));
    }
    grads_of(r, y, co, c0, end, step);
}

// `logit_grad` of classes c0, c0 + step, ... below `end`: in plain f32 where
// the row's coefficients are finite and no per-class factor enters (every
// row of a loss without smoothing or probability targets, unless its
// upstream or denominator is not finite), through `Ext` otherwise. Two loops
// whose trip counts the coefficients choose, not a branch per logit: a CPU
// adapter runs both sides of a branch for every logit, and a loop of no
// trips once.
fn grads_of(r: u32, y: i32, co: Coef, c0: u32, end: u32, step: u32) {
    let plain = !uses_factors() && !co.nan && co.p.k == K_FIN && co.py.k == K_FIN && co.ey.k == K_FIN;
    for (var c = select(end, c0, plain); c < end; c = c + step) {
        logit_grad_plain(r, c, y, co);
    }
    for (var c = select(c0, end, plain); c < end; c = c + step) {
        logit_grad(r, c, y, co);
    }
}

// `logit_grad` for finite coefficients without factors: the same products
// and sum in f32 (p <= 1; an overflow of the sum is stored as IEEE's).
fn logit_grad_plain(r: u32, c: u32, y: i32, co: Coef) {
    let j = row_base(r) + c * params.inner;
    var g = 0.0;
    if (LOSS != NLL) {
        let x = ld_input(params.x_skip + j);
        let f = is_fin(x);
        let p = select(0.0, exp((select(co.m, x, f) - co.m) - co.ls), f);
        g = p * select(co.p.v, co.py.v, i32(c) == y);
    }
    grad[params.x_skip + j] = select(g, g + co.ey.v, i32(c) == y);
}

fn add_items(p: Item, q: Item) -> Item {
    return Item(ext_add(p.l, q.l), ext_add(p.d, q.d));
}

// The workgroup's (loss, denominator) partial at `group` of the slice. Call
// from uniform control flow; `v` is what this invocation holds.
fn write_partial(lid: u32, group: u32, v: Item) {
    let t = unpack(reduce_wg(lid, pack(v)));
    if (lid == 0u) {
        let at = 2u * (params.partial_base + group);
        out[at] = ext_f32(t.l);
        out[at + 1u] = ext_f32(t.d);
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let r = group * WG + lid;
    var v = Item(fin(0.0), fin(0.0));
    if (r < params.rows) {
        let y = target_class(r);
        if (skipped(y)) {
            v = skipped_loss(y);
            if (GRAD) {
                var st = empty();
                if (scans(y)) {
                    st = scan(r, y).st;
                }
                for (var c = 0u; c < params.classes; c = c + 1u) {
                    skip_grad(r, c, y, st);
                }
            }
        } else if (LOSS == NLL) {
            v = nll(r, y);
            if (GRAD) {
                grads_of(r, y, nll_coef(y, row_scale(r)), 0u, params.classes, 1u);
            }
        } else {
            let sc = scan(r, y);
            v = finish(sc.st, y, sc.xy);
            if (GRAD) {
                grads_of(r, y, coef(sc.st, y, sc.xy, row_scale(r)), 0u, params.classes, 1u);
            }
        }
        if (params.write_items != 0u) {
            out[params.o_skip + r] = ext_f32(v.l);
        }
    }
    if (params.write_items == 0u) {
        write_partial(lid, group, v);
    }
}

// Rows per thread of `nll_rows`, `nll_rows_per_thread` in src/gpu/rows.rs
// (checked by gpu::contract::shared_constants_match_the_shaders).
const NLL_ROWS: u32 = 8u;

// nll, NLL_ROWS rows per thread: rows k WG + lid of the workgroup's
// NLL_ROWS WG, so that neighbouring threads read neighbouring targets.
@compute @workgroup_size(256)
fn nll_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    var v = Item(fin(0.0), fin(0.0));
    for (var k = 0u; k < NLL_ROWS; k = k + 1u) {
        let r = (group * NLL_ROWS + k) * WG + lid;
        if (r >= params.rows) {
            break;
        }
        let y = target_class(r);
        let it = row_item(r, y, empty(), 0.0);
        if (params.write_items != 0u) {
            out[params.o_skip + r] = ext_f32(it.l);
        }
        v = add_items(v, it);
        if (GRAD) {
            row_grads(r, y, empty(), 0.0, 0u, params.classes, 1u);
        }
    }
    if (params.write_items == 0u) {
        write_partial(lid, group, v);
    }
}

var<workgroup> wg_y: i32;

// The flags of the states in `red` while they merge.
var<workgroup> red_f: array<u32, WG>;

fn write_row(r: u32, v: Item) {
    if (params.write_items != 0u) {
        out[params.o_skip + r] = ext_f32(v.l);
    } else {
        let at = 2u * (params.partial_base + r);
        out[at] = ext_f32(v.l);
        out[at + 1u] = ext_f32(v.d);
    }
}

fn to_vec(st: State) -> vec4<f32> {
    return vec4(st.m, st.r, st.a, st.b);
}

fn from_vec(v: vec4<f32>, f: u32) -> State {
    return State(v.x, v.y, v.z, v.w, f);
}

// Merges the states of each slice of `lanes` invocations (a power of two) by
// a tree in workgroup memory; each invocation gets its slice's state. Call
// from uniform control flow.
fn merge_slices(lid: u32, st: State, lanes: u32) -> State {
    red[lid] = to_vec(st);
    red_f[lid] = st.f;
    workgroupBarrier();
    let lane = lid % lanes;
    for (var k = lanes / 2u; k > 0u; k = k >> 1u) {
        if (lane < k) {
            let both = merge(from_vec(red[lid], red_f[lid]), from_vec(red[lid + k], red_f[lid + k]));
            red[lid] = to_vec(both);
            red_f[lid] = both.f;
        }
        workgroupBarrier();
    }
    let lead = lid - lane;
    let whole = from_vec(red[lead], red_f[lead]);
    // `red` is free again only once every invocation has read its state.
    workgroupBarrier();
    return whole;
}

// `lanes` invocations per row, WG / lanes rows per workgroup: neighbouring
// lanes read neighbouring logits of a row (coalesced where inner == 1), and a
// short row does not leave most of a workgroup idle.
@compute @workgroup_size(256)
fn group_shared(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let lanes = params.lanes;
    let lane = lid % lanes;
    let r = group * (WG / lanes) + lid / lanes;
    let live = r < params.rows;
    var y = IGNORED;
    var st = empty();
    if (live) {
        y = target_class(r);
        if (scans(y)) {
            st = scan_part(r, y, lane, params.classes, lanes);
        }
    }
    let whole = merge_slices(lid, st, lanes);
    var v = Item(fin(0.0), fin(0.0));
    if (live) {
        let xy = target_logit(r, y);
        if (lane == 0u) {
            v = row_item(r, y, whole, xy);
            if (params.write_items != 0u) {
                out[params.o_skip + r] = ext_f32(v.l);
            }
        }
        if (GRAD) {
            row_grads(r, y, whole, xy, lane, params.classes, lanes);
        }
    }
    if (params.write_items == 0u) {
        write_partial(lid, group, v);
    }
}

// One workgroup per row.
@compute @workgroup_size(256)
fn wide(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let r = wid.x + wid.y * params.groups_x;
    if (r >= params.rows) {
        return;
    }
    if (lid == 0u) {
        wg_y = target_class(r);
    }
    let y = workgroupUniformLoad(&wg_y);
    var whole = empty();
    // Rows with a bad class index, nll, and ignored rows but for a gradient
    // read no row.
    if (scans(y)) {
        whole = merge_slices(lid, scan_part(r, y, lid, params.classes, WG), WG);
    }
    let xy = target_logit(r, y);
    if (lid == 0u) {
        write_row(r, row_item(r, y, whole, xy));
    }
    if (GRAD) {
        row_grads(r, y, whole, xy, lid, params.classes, WG);
    }
}

// A split row's partial state: m, r, a, b and the flags (small integers,
// exact as f32).
const STATE_LEN: u32 = 5u;

// The first pass of a split row: workgroup (r, k) merges the state of
// classes [k chunk, (k + 1) chunk) into `states`.
@compute @workgroup_size(256)
fn split_scan(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * params.groups_x;
    let r = g / params.chunks;
    if (r >= params.rows) {
        return;
    }
    if (lid == 0u) {
        wg_y = target_class(r);
    }
    let y = workgroupUniformLoad(&wg_y);
    if (!scans(y)) {
        return;
    }
    let c0 = (g % params.chunks) * params.chunk;
    let end = min(c0 + params.chunk, params.classes);
    let st = merge_slices(lid, scan_part(r, y, c0 + lid, end, WG), WG);
    if (lid == 0u) {
        let at = params.states_at + g * STATE_LEN;
        states[at] = st.m;
        states[at + 1u] = st.r;
        states[at + 2u] = st.a;
        states[at + 3u] = st.b;
        states[at + 4u] = f32(st.f);
    }
}

// The second pass: merges row r's states, writes its item from workgroup
// (r, 0) and, with GRAD, the gradient of chunk k from workgroup (r, k);
// without GRAD there is one workgroup per row.
@compute @workgroup_size(256)
fn split_finish(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = wid.x + wid.y * params.groups_x;
    let per_row = select(1u, params.chunks, GRAD);
    let r = g / per_row;
    let k = g % per_row;
    if (r >= params.rows) {
        return;
    }
    if (lid == 0u) {
        wg_y = target_class(r);
    }
    let y = workgroupUniformLoad(&wg_y);
    var whole = empty();
    if (scans(y)) {
        var mine = empty();
        if (lid < params.chunks) {
            let at = params.states_at + (r * params.chunks + lid) * STATE_LEN;
            mine = State(states[at], states[at + 1u], states[at + 2u], states[at + 3u], u32(states[at + 4u]));
        }
        whole = merge_slices(lid, mine, WG);
    }
    let xy = target_logit(r, y);
    if (k == 0u && lid == 0u) {
        write_row(r, row_item(r, y, whole, xy));
    }
    if (GRAD) {
        let c0 = k * params.chunk;
        row_grads(r, y, whole, xy, c0 + lid, min(c0 + params.chunk, params.classes), WG);
    }
}

// Pre-pass of a class-index mean's gradient: per-workgroup sums of the
// denominator, w[y] over the rows that are not ignored (NaN for a bad index).
@compute @workgroup_size(256)
fn denominator(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let r = group * WG + lid;
    var d = fin(0.0);
    var bad = 0.0;
    if (r < params.rows) {
        let y = target_class(r);
        if (y == BAD) {
            bad = 1.0;
        } else if (y != IGNORED) {
            d = ext(class_weight(u32(y)));
        }
    }
    // Bad indices and weights that are not finite are counted, and give their
    // kinds only at the store.
    let nan = bad + select(0.0, 1.0, d.k == K_NAN);
    let t = reduce_wg(lid, vec4(d.v, nan, select(0.0, 1.0, d.k == K_PINF), select(0.0, 1.0, d.k == K_NINF)));
    if (lid == 0u) {
        var e = ext(t.x);
        if (t.z > 0.0) {
            e = ext_add(e, ext_kind(K_PINF));
        }
        if (t.w > 0.0) {
            e = ext_add(e, ext_kind(K_NINF));
        }
        if (t.y > 0.0) {
            e = ext_kind(K_NAN);
        }
        out[params.partial_base + group] = ext_f32(e);
    }
}
