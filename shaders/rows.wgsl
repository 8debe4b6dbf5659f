// Softmax-row losses (cross_entropy, nll, softmax_focal) over input
// (N, C, inner): row r = (r / inner, ., r % inner), logit (r, c) at
// input[(n * C + c) * inner + s]. Each row's logits are read once, through an
// online log-sum-exp; rows are fused with their reduction into per-workgroup
// (loss, denominator) partials that finalize.wgsl combines, or written as
// items with `write_items` set.
//
// A dispatch covers a slice of whole batch entries (inputs may be longer than
// one binding). Its bindings start at the 256-byte boundary at or before the
// slice's first logit, target and item; `x_skip`, `t_skip` and `o_skip` say
// how far in the slice starts. Its partials start at `partial_base` in the
// scratch that all slices share.
//
// With GRAD the pass also writes d loss / d logit for every logit: a second
// walk over the row once its log-sum-exp is known (none for nll), scaled by
// the upstream and the reduction.
//
// `main` gives each thread one row. `wide` gives each workgroup one row and
// merges its threads' states with a tree: it is for large class counts, where
// one thread per row would walk the whole vocabulary alone. (Mesa's llvmpipe
// also stops every shader invocation after 65 535 loop iterations in total, so
// no thread may loop over a 10^5-class row.)
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
}

// Class indices as i32 (ignored rows hold `ignore`), or the bits of f32
// probability targets of the input's shape.
@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
// One value per row of the slice (from `o_skip`), or a single one for all.
@group(0) @binding(3) var<storage, read> upstream: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
// The input's layout, from `x_skip`.
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;
@group(0) @binding(6) var<uniform> params: Params;

override GRAD: bool = false;

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
//   m = max logit (-inf while no finite logit was seen),
//   r = sum of exp(x_c - m) over the classes except one arg-max (s - 1, so
//       that ln(s) = log1p(r) keeps its precision when one class dominates),
//   a = sum of t_c (m - x_c) and b = sum of t_c, for the class factors t_c
//       (w_c, or w_c times the smoothed probability target).
// Then sum_c t_c (lse - x_c) = b ln(s) + a. A -inf logit adds t_c * inf to a
// directly (NaN for t_c = 0, as the reference's 0 * inf), and its t_c to b,
// which the gradient needs whole (the loss is inf or NaN then anyway).
struct State {
    m: f32,
    r: f32,
    a: f32,
    b: f32,
}

fn empty() -> State {
    return State(-inf(), 0.0, 0.0, 0.0);
}

fn push(st: State, x: f32, t: f32) -> State {
    var o = st;
    if (x == -inf()) {
        o.a = o.a + t * inf();
        o.b = o.b + t;
        return o;
    }
    if (x > o.m) {
        if (o.m != -inf()) {
            // The old maximum joins r; everything seen so far moves away from m.
            o.r = (o.r + 1.0) * exp(o.m - x);
            o.a = o.a + o.b * (x - o.m);
        }
        o.m = x;
    } else {
        // NaN logits land here and poison r.
        o.r = o.r + exp(x - o.m);
    }
    o.a = o.a + t * (o.m - x);
    o.b = o.b + t;
    return o;
}

fn merge(p: State, q: State) -> State {
    if (q.m == -inf()) {
        return State(p.m, p.r, p.a + q.a, p.b + q.b);
    }
    if (p.m == -inf()) {
        return State(q.m, q.r, p.a + q.a, p.b + q.b);
    }
    var hi = p;
    var lo = q;
    if (q.m > p.m) {
        hi = q;
        lo = p;
    }
    let d = hi.m - lo.m;
    return State(hi.m, hi.r + (lo.r + 1.0) * exp(-d), hi.a + lo.a + lo.b * d, hi.b + lo.b);
}

fn class_weight(c: u32) -> f32 {
    if (params.has_weight != 0u) {
        return weight[c];
    }
    return 1.0;
}

// The factor t_c of class c at logit `j` of the slice (see State): the class
// weight for label smoothing, times the smoothed probability for probability
// targets.
fn factor(c: u32, j: u32) -> f32 {
    let w = class_weight(c);
    if (LOSS == CROSS_ENTROPY_PROB) {
        let t = bitcast<f32>(targets[params.t_skip + j]);
        return w * (t * (1.0 - params.eps) + params.eps / f32(params.classes));
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
    let y = targets[params.t_skip + r];
    if (y == params.ignore) {
        return IGNORED;
    }
    if (y < 0 || u32(y) >= params.classes) {
        return BAD;
    }
    return y;
}

// Whether row class y reads no logits: an ignored or bad class index.
fn skipped(y: i32) -> bool {
    return LOSS != CROSS_ENTROPY_PROB && y < 0;
}

// (loss, denominator) of a skipped row: nothing for an ignored one, NaN for a
// bad index, so that the mean is NaN as well.
fn skipped_loss(y: i32) -> vec2<f32> {
    if (y == BAD) {
        return vec2(nan(), nan());
    }
    return vec2(0.0, 0.0);
}

// (loss, denominator) of a row from its complete state, its target class y
// (unused for probability targets) and the target's logit x_y.
fn finish(st: State, y: i32, xy: f32) -> vec2<f32> {
    // log(s) = lse - m >= 0.
    var ls = log1p(st.r);
    // All logits -inf, or a +inf one: the reference's log_softmax is NaN.
    if ((st.m == -inf() && params.classes > 0u) || st.m == inf()) {
        ls = nan();
    }
    if (LOSS == CROSS_ENTROPY_PROB) {
        return vec2(st.b * ls + st.a, 1.0);
    }
    let wy = class_weight(u32(y));
    // -log p_y = lse - x_y.
    let ce = ls + (st.m - xy);
    if (LOSS == SOFTMAX_FOCAL) {
        // 1 - p_y without cancellation when p_y is near 1.
        let u = -expm1(-ce);
        return vec2(wy * pow_gamma(u, params.gamma) * ce, wy);
    }
    var l = wy * ce;
    // Only with smoothing: its sum over all classes turns a -inf logit into +inf.
    if (params.eps > 0.0) {
        let uniform_part = st.b * ls + st.a;
        l = (1.0 - params.eps) * l + params.eps / f32(params.classes) * uniform_part;
    }
    return vec2(l, wy);
}

// Index of logit (r, 0) in the slice; class c is `inner` further along per class.
fn row_base(r: u32) -> u32 {
    return (r / params.inner) * params.classes * params.inner + r % params.inner;
}

// The backward, as autograd takes it through log_softmax (conventions on the
// CPU twin in src/cpu/rows.rs): with p_k = exp((x_k - m) - ln s) — never
// exp(x_k - lse), whose lse carries an ulp of m (1e-3 at |m| = 1e4),
//   d loss / d x_k = p_k * (k == y ? py : p) - b * t_k + (k == y ? ey : 0),
// t_k being the class factor (see State). The coefficients are per row.
struct Coef {
    m: f32,
    ls: f32,
    p: f32,
    py: f32,
    b: f32,
    ey: f32,
}

// The upstream of row r, scaled by the reduction.
fn row_scale(r: u32) -> f32 {
    if (params.write_items != 0u) {
        if (arrayLength(&upstream) > 1u) {
            return upstream[params.o_skip + r];
        }
        return upstream[0];
    }
    let g = upstream[0];
    if (params.scale_mode == 1u) {
        return g / params.divisor;
    }
    if (params.scale_mode == 2u) {
        let d = out[params.d_at];
        // softmax_focal defines its mean over a zero total weight with a zero
        // gradient; elsewhere g / 0 meets the zero weights: NaN, as in PyTorch.
        if (LOSS == SOFTMAX_FOCAL && d == 0.0) {
            return 0.0;
        }
        return safe_div(g, d);
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
    if (st.r <= 1.1102230246251565e-16) {
        return true;
    }
    return st.m != 0.0 && log1p(st.r) <= ldexp(1.0, frexp(st.m).exp - 54);
}

fn nll_coef(y: i32, s: f32) -> Coef {
    return Coef(0.0, 0.0, 0.0, 0.0, 0.0, -class_weight(u32(y)) * s);
}

// The coefficients of a row from its complete state, for upstream s.
fn coef(st: State, y: i32, xy: f32, s: f32) -> Coef {
    var ls = log1p(st.r);
    if ((st.m == -inf() && params.classes > 0u) || st.m == inf()) {
        ls = nan();
    }
    if (LOSS == CROSS_ENTROPY_PROB) {
        return Coef(st.m, ls, s * st.b, s * st.b, s, 0.0);
    }
    let wy = class_weight(u32(y));
    // -log p_y, and 1 - p_y without cancellation.
    var ce = ls + (st.m - xy);
    var u = -expm1(-ce);
    if (LOSS == SOFTMAX_FOCAL) {
        if (saturated(st, xy)) {
            ce = 0.0;
            u = 0.0;
        }
        let gamma = params.gamma;
        // gamma u^(gamma - 1) is infinite at u = 0 for 0 < gamma < 1 and
        // meets log p_y = 0: NaN, as in PyTorch.
        if (u == 0.0 && gamma > 0.0 && gamma < 1.0) {
            return Coef(st.m, ls, nan(), nan(), 0.0, nan());
        }
        var focal = 0.0;
        if (gamma != 0.0) {
            focal = gamma * pow_gamma(u, gamma - 1.0);
        }
        // d loss / d log p_y; the softmax's backward splits it.
        let dl = -pow_gamma(u, gamma) - focal * exp(-ce) * ce;
        let gy = s * wy * dl;
        return Coef(st.m, ls, -gy, 0.0, 0.0, gy * u);
    }
    // Cross entropy: (1 - eps) on the target, eps / C spread by class weight.
    let a = s * (1.0 - params.eps) * wy;
    var b = 0.0;
    if (params.eps > 0.0) {
        b = s * (params.eps / f32(params.classes));
    }
    return Coef(st.m, ls, a + b * st.b, b * st.b, b, -a * u);
}

fn logit_grad(r: u32, c: u32, y: i32, co: Coef) {
    let j = row_base(r) + c * params.inner;
    var g = 0.0;
    if (LOSS != NLL) {
        let p = exp((input[params.x_skip + j] - co.m) - co.ls);
        g = p * select(co.p, co.py, i32(c) == y) - co.b * factor(c, j);
    }
    if (i32(c) == y) {
        g = g + co.ey;
    }
    grad[params.x_skip + j] = g;
}

// Ignored rows pass no gradient; a bad class index gives NaN.
fn skip_grad(r: u32, c: u32, y: i32) {
    grad[params.x_skip + row_base(r) + c * params.inner] = select(0.0, nan(), y == BAD);
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
            let x = input[params.x_skip + j];
            if (i32(c) == y) {
                xy = x;
            }
            part = push(part, x, factor(c, j));
        }
        st = merge(st, part);
    }
    return Scan(st, xy);
}

fn nll(r: u32, y: i32) -> vec2<f32> {
    let wy = class_weight(u32(y));
    return vec2(-wy * input[params.x_skip + row_base(r) + u32(y) * params.inner], wy);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let r = group * WG + lid;
    var v = vec2(0.0, 0.0);
    if (r < params.rows) {
        let y = target_class(r);
        if (skipped(y)) {
            v = skipped_loss(y);
            if (GRAD) {
                for (var c = 0u; c < params.classes; c = c + 1u) {
                    skip_grad(r, c, y);
                }
            }
        } else if (LOSS == NLL) {
            v = nll(r, y);
            if (GRAD) {
                let co = nll_coef(y, row_scale(r));
                for (var c = 0u; c < params.classes; c = c + 1u) {
                    logit_grad(r, c, y, co);
                }
            }
        } else {
            let sc = scan(r, y);
            v = finish(sc.st, y, sc.xy);
            if (GRAD) {
                let co = coef(sc.st, y, sc.xy, row_scale(r));
                for (var c = 0u; c < params.classes; c = c + 1u) {
                    logit_grad(r, c, y, co);
                }
            }
        }
        if (params.write_items != 0u) {
            out[params.o_skip + r] = v.x;
        }
    }
    if (params.write_items == 0u) {
        let t = reduce_wg(lid, vec4(v, 0.0, 0.0));
        if (lid == 0u) {
            let at = 2u * (params.partial_base + group);
            out[at] = t.x;
            out[at + 1u] = t.y;
        }
    }
}

var<workgroup> wg_y: i32;
var<workgroup> wg_xy: f32;

fn write_row(r: u32, v: vec2<f32>) {
    if (params.write_items != 0u) {
        out[params.o_skip + r] = v.x;
    } else {
        let at = 2u * (params.partial_base + r);
        out[at] = v.x;
        out[at + 1u] = v.y;
    }
}

fn to_vec(st: State) -> vec4<f32> {
    return vec4(st.m, st.r, st.a, st.b);
}

fn from_vec(v: vec4<f32>) -> State {
    return State(v.x, v.y, v.z, v.w);
}

// One workgroup per row; cross_entropy and softmax_focal only.
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
    // Ignored rows, and rows with a bad class index, read no logits.
    if (skipped(y)) {
        if (lid == 0u) {
            write_row(r, skipped_loss(y));
        }
        if (GRAD) {
            for (var c = lid; c < params.classes; c = c + WG) {
                skip_grad(r, c, y);
            }
        }
        return;
    }
    let base = row_base(r);
    var st = empty();
    for (var c = lid; c < params.classes; c = c + WG) {
        let j = base + c * params.inner;
        let x = input[params.x_skip + j];
        if (i32(c) == y) {
            wg_xy = x;
        }
        st = push(st, x, factor(c, j));
    }
    red[lid] = to_vec(st);
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (lid < k) {
            red[lid] = to_vec(merge(from_vec(red[lid]), from_vec(red[lid + k])));
        }
        workgroupBarrier();
    }
    let whole = from_vec(red[0]);
    if (lid == 0u) {
        write_row(r, finish(whole, y, wg_xy));
    }
    if (GRAD) {
        let co = coef(whole, y, wg_xy, row_scale(r));
        for (var c = lid; c < params.classes; c = c + WG) {
            logit_grad(r, c, y, co);
        }
    }
}

// Pre-pass of a class-index mean's gradient: per-workgroup sums of the
// denominator, w[y] over the rows that are not ignored (NaN for a bad index).
@compute @workgroup_size(256)
fn denominator(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let r = group * WG + lid;
    var d = 0.0;
    if (r < params.rows) {
        let y = target_class(r);
        if (y == BAD) {
            d = nan();
        } else if (y != IGNORED) {
            d = class_weight(u32(y));
        }
    }
    let t = reduce_wg(lid, vec4(d, 0.0, 0.0, 0.0));
    if (lid == 0u) {
        out[params.partial_base + group] = t.x;
    }
}
