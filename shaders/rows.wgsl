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
// `main` gives each thread one row. `wide` gives each workgroup one row and
// merges its threads' states with a tree: it is for large class counts, where
// one thread per row would walk the whole vocabulary alone. (Mesa's llvmpipe
// also stops every shader invocation after 65 535 loop iterations in total, so
// no thread may loop over a 10^5-class row.)
//
// Params must be kept in sync with `RowsParams` in src/gpu/rows.rs.
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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Class indices as i32 (ignored rows hold `ignore`), or the bits of f32
// probability targets of the input's shape.
@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> params: Params;

// Loss ids: must match `loss_id` in src/gpu/rows.rs.
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
// directly (NaN for t_c = 0, as the reference's 0 * inf).
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
        return State(p.m, p.r, p.a + q.a, p.b);
    }
    if (p.m == -inf()) {
        return State(q.m, q.r, p.a + q.a, q.b);
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

fn row_loss(r: u32) -> vec2<f32> {
    let y = target_class(r);
    if (skipped(y)) {
        return skipped_loss(y);
    }
    let base = row_base(r);
    if (LOSS == NLL) {
        let wy = class_weight(u32(y));
        return vec2(-wy * input[params.x_skip + base + u32(y) * params.inner], wy);
    }
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
    return finish(st, y, xy);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let r = group * WG + lid;
    var v = vec2(0.0, 0.0);
    if (r < params.rows) {
        v = row_loss(r);
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
    if (lid == 0u) {
        write_row(r, finish(from_vec(red[0]), y, wg_xy));
    }
}
