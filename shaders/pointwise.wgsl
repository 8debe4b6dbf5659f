// Elementwise losses, each fused with its reduction: one pass maps every
// element and sums (loss, denominator) per workgroup; finalize.wgsl combines
// the partials. With `WRITE_ITEMS` set it writes the per-element losses instead.
// A dispatch covers one slice of the input (inputs may be longer than one
// binding): `base` is the slice's first element in the whole tensor.
//
// With GRAD the same pass also writes each element's gradient, read from the
// same loads: g * w * dloss/dx, g being the upstream scaled by the reduction.
//
// This file holds what every variant shares: the parameters and each loss's
// math on one element. The bindings and entry points are in
// pointwise_scalar.wgsl (`point-scalar`, one f32 per load) and
// pointwise_vec4.wgsl (`point-vec4`, vec4 loads), which bind the same buffers
// with different element types and so are modules of their own
// (src/gpu/pointwise.rs, src/context.rs).
//
// Params is `PointParams` in src/gpu/plan.rs (p0..p3 its `p`); the test
// gpu::contract::params_match_the_shaders checks that they agree.
struct Params {
    n: u32,
    // Elements per target value: Q for quantile with a list, else 1.
    per_target: u32,
    // Broadcast weight: w[(i / w_inner) % w_len]; w_len == 0 means no weight.
    w_inner: u32,
    w_len: u32,
    // Broadcast aux (pos_weight, or the quantile list), same scheme.
    a_inner: u32,
    a_len: u32,
    groups_x: u32,
    base: u32,
    // First partial of this slice in the scratch shared by all slices.
    partial_base: u32,
    // A broadcast tensor as long as the input is bound slice by slice.
    w_sliced: u32,
    a_sliced: u32,
    p0: f32,
    p1: f32,
    p2: f32,
    p3: f32,
    // The upstream's scale: 0: none; 1: 1 / divisor; 2: 1 / out[d_at] (Σw).
    scale_mode: u32,
    d_at: u32,
    divisor: f32,
    // total: elements per weight value.
    repeat: f32,
    // Elements each thread maps before the workgroup reduction (see
    // `per_thread` in src/gpu/pointwise.rs).
    per_thread: u32,
    // The first element of the slice the scalar entry maps: `point-vec4`
    // leaves the last n % 4 elements of a slice to it, bound from the slice's
    // aligned start.
    first: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

override GRAD: bool = false;
// Whether a weight tensor is bound (`w_len != 0`). Without one every element's
// weight is the constant 1, and the compiler folds away its classification
// and the products by it, which the per-element math otherwise pays for on
// every element.
override WEIGHT: bool = false;
// Whether an aux tensor (quantiles, variance or pos_weight) is bound
// (`a_len != 0`), for the same reason.
override AUX: bool = false;
// Whether the call writes each element's loss (reduction `none`) instead of
// partial sums: a constant, so that a reduced call carries no masked-off
// stores of items or loads of a per-element upstream.
override WRITE_ITEMS: bool = false;

// The walk of both entry points: a team of TEAM neighbouring invocations
// (TEAM4 for vectors) maps a run of elements of its own, its lanes side by
// side, one 128-byte line of f32 per step. A GPU loads each step as whole
// lines, as a grid-stride loop would. A CPU adapter (lavapipe) runs each SIMD
// group of 8 invocations through its whole loop before the next one starts:
// with a run per team its loads stream through contiguous memory, where a
// grid-stride loop would jump a whole grid between two loads of one group
// (3x the time of mse on lavapipe, BENCHMARKS.md "Elementwise variants").
const TEAM: u32 = 32u;
const TEAM4: u32 = 8u;

// The losses' switches as pipeline constants, so that only the chosen side
// is compiled (a CPU adapter runs both sides of a uniform's test for every
// element): FLAG0 is kl_div's log_target, poisson_nll's log_input and
// gaussian_nll's full, FLAG1 poisson_nll's full (`flags` in
// src/gpu/pointwise.rs).
override FLAG0: bool = false;
override FLAG1: bool = false;

// Loss ids, as `loss_id` in src/gpu/pointwise.rs gives them (checked by the
// test gpu::contract::loss_ids_match_the_shaders).
override LOSS: u32 = 0u;
const MSE: u32 = 0u;
const L1: u32 = 1u;
const HUBER: u32 = 2u;
const SMOOTH_L1: u32 = 3u;
const LOG_COSH: u32 = 4u;
const QUANTILE: u32 = 5u;
const BCE: u32 = 6u;
const BCE_WITH_LOGITS: u32 = 7u;
const SIGMOID_FOCAL: u32 = 8u;
const KL_DIV: u32 = 9u;
const POISSON_NLL: u32 = 10u;
const GAUSSIAN_NLL: u32 = 11u;

// Each loss below returns an `Ext` (common.wgsl): its arguments are
// classified from their bits and no NaN or infinity is ever an operand. Where
// a loss has a more accurate form than the reference's expression, that form
// serves finite arguments, and the reference's expression (src/cpu/pointwise.rs,
// PyTorch's), evaluated on `Ext`, serves the others, so that every NaN and
// infinity comes out where the reference's does.

// The losses of the error e = x - y grow without bound in |e|: +inf for an
// infinite error, NaN for NaN.
fn unbounded(e: Ext) -> Ext {
    return ext_kind(select(K_PINF, K_NAN, e.k == K_NAN));
}

fn mse(e: Ext) -> Ext {
    if (e.k != K_FIN) { return unbounded(e); }
    return ext(e.v * e.v);
}

fn l1(e: Ext) -> Ext {
    if (e.k != K_FIN) { return unbounded(e); }
    return fin(abs(e.v));
}

// The quadratic branch is strict (z < delta), as in the reference.
fn huber(e: Ext, delta: f32) -> Ext {
    if (e.k != K_FIN) { return unbounded(e); }
    return ext(huber_of(abs(e.v), delta));
}

// huber of |e| = z in f32 (an overflow left to the caller).
fn huber_of(z: f32, delta: f32) -> f32 {
    return select(delta * (z - 0.5 * delta), 0.5 * z * z, z < delta);
}

// beta == 0 never takes the quadratic branch, which makes it L1.
fn smooth_l1(e: Ext, beta: f32) -> Ext {
    if (e.k != K_FIN) { return unbounded(e); }
    let z = abs(e.v);
    return ext(select(z - 0.5 * beta, 0.5 * z * z / beta, z < beta));
}

// The stable form |e| + log1p(e^-2|e|) - log 2 cancels for small |e|: use the
// Taylor series of log cosh there.
fn log_cosh(d: Ext) -> Ext {
    if (d.k != K_FIN) { return unbounded(d); }
    let e = d.v;
    let a = abs(e);
    // Both forms, chosen by a select (a CPU adapter runs both sides of a
    // branch anyway); the series of 0 where it is not taken, so that its
    // square never overflows.
    let small = a < 0.25;
    let es = select(0.0, e, small);
    let e2 = es * es;
    var p = 31.0 / 14175.0;
    p = p * e2 - 17.0 / 2520.0;
    p = p * e2 + 1.0 / 45.0;
    p = p * e2 - 1.0 / 12.0;
    p = p * e2 + 0.5;
    return fin(select(a + log1p(exp(-2.0 * a)) - LN2, e2 * p, small));
}

// torch.maximum((q - 1) e, q e) for e = y - x: NaN if either is (q = 0 or 1
// times an infinite error).
fn quantile(x: f32, y: f32, q: f32) -> Ext {
    let e = ext_sub(ext(y), ext(x));
    let qe = ext(q);
    return ext_max(ext_mul(ext_add(qe, fin(-1.0)), e), ext_mul(qe, e));
}

// Each log is clamped at -100 before it meets the target, as PyTorch clamps
// it. The logs of 0 (x = ±0 from its bits, x = 1) take the clamp directly: no
// -inf is formed. A probability outside [0, 1] (only a device buffer can hold
// one; PyTorch raises) gives NaN, as its log would.
fn bce(x: f32, y: f32) -> Ext {
    let l = bce_logs(x);
    let ye = ext(y);
    return ext_pick(ext_sub(ext_mul(ext_add(ye, fin(-1.0)), fin(l.y)), ext_mul(ye, fin(l.x))), ext_kind(K_NAN), l.z != 0.0);
}

// The clamped logs (ln x, log1p(-x)) of a probability x, and 1 in z where x
// is not one (NaN for the loss; the logs are then those of 0.5, unused).
fn bce_logs(x: f32) -> vec3<f32> {
    let bad = !is_fin(x) || (sign_bit(x) && !is_zero(x)) || x > 1.0;
    let xs = select(x, 0.5, bad);
    let lx = select(max(ln(xs), -100.0), -100.0, is_zero(xs));
    let l1x = select(max(log1p(-xs), -100.0), -100.0, xs == 1.0);
    return vec3(lx, l1x, select(0.0, 1.0, bad));
}

// The reference's (1 - y) x + lw softplus(-x), lw = 1 + (pw - 1) y. At x =
// -inf PyTorch's form of it, (1 - y) x + lw (m + log(e^-m + e^(-x - m))) with
// m = max(-x, 0), is NaN for every y.
fn bce_logits_ref(x: Ext, y: Ext, pw: Ext) -> Ext {
    if (x.k == K_NINF) {
        return ext_kind(K_NAN);
    }
    let lw = ext_add(fin(1.0), ext_mul(ext_add(pw, fin(-1.0)), y));
    return ext_add(ext_mul(ext_sub(fin(1.0), y), x), ext_mul(lw, ext_softplus(ext_neg(x))));
}

// For finite arguments rearranged per sign of x, so that no large terms
// cancel: (1 - y) x + tail, or -pw y x + tail, tail = lw log1p(e^-|x|).
fn bce_with_logits(x: f32, y: f32, pw: f32) -> Ext {
    if (!(is_fin(x) && is_fin(y) && is_fin(pw))) {
        return bce_logits_ref(ext(x), ext(y), ext(pw));
    }
    return bce_with_logits_fin(x, y, pw);
}

// `bce_with_logits` of finite arguments.
fn bce_with_logits_fin(x: f32, y: f32, pw: f32) -> Ext {
    return bce_logits_of(logistic(x), x, y, pw);
}

// What the fast forms of bce_with_logits and sigmoid_focal take of a finite
// logit x, from one exponential e = e^-|x|: sigma(x) and sigma(-x) (1 / (1 +
// e) and e / (1 + e), by the sign of x) and log1p(e).
struct Logistic {
    p: f32,
    r: f32,
    tail: f32,
}

fn logistic(x: f32) -> Logistic {
    let e = exp(-abs(x));
    let q = 1.0 / (1.0 + e);
    let pos = x >= 0.0;
    return Logistic(select(e * q, q, pos), select(q, e * q, pos), log1p(e));
}

// bce_with_logits_fin from the logit's `logistic`, a select for the sign of
// x: a CPU adapter runs both sides of a branch anyway.
fn bce_logits_of(g: Logistic, x: f32, y: f32, pw: f32) -> Ext {
    let tail = (1.0 + (pw - 1.0) * y) * g.tail;
    return ext(select(-pw * y * x, (1.0 - y) * x, x >= 0.0) + tail);
}

// torchvision's sigmoid focal loss; for finite arguments 1 - p_t is formed
// from sigma(x) and sigma(-x) directly, so that it keeps its precision when
// p_t is near 1.
fn sigmoid_focal(x: f32, y: f32, alpha: f32, gamma: f32) -> Ext {
    if (!(is_fin(x) && is_fin(y))) {
        return focal_ref(ext(x), ext(y), alpha, gamma);
    }
    return sigmoid_focal_fin(x, y, alpha, gamma, false);
}

// `sigmoid_focal` of finite arguments.
fn sigmoid_focal_fin(x: f32, y: f32, alpha: f32, gamma: f32, unit: bool) -> Ext {
    let g = logistic(x);
    let ce = bce_logits_of(g, x, y, 1.0);
    let u = y * g.r + (1.0 - y) * g.p;
    var l = ext_mul(ce, focal_pow(u, gamma, unit));
    if (alpha >= 0.0) {
        l = ext_mul(l, fin(alpha * y + (1.0 - alpha) * (1.0 - y)));
    }
    return l;
}

// u^g for a u in [0, 1] (`unit`, a target in [0, 1]: `rare`) and g >= -1,
// a zero u with g > 0 or g = 0 only: pow_gamma's values as selects, no
// classification (they are finite), where ext_pow's handling of every other
// u cost sigmoid_focal a third of its time on a CPU adapter. Otherwise
// ext_pow. `unit` is a constant at every call: the other side folds away.
fn focal_pow(u: f32, g: f32, unit: bool) -> Ext {
    if (!unit) {
        return ext_pow(fin(u), g);
    }
    let zero = u == 0.0;
    var r = exp2(g * log2(select(u, 1.0, zero)));
    r = select(r, u * u, g == 2.0);
    r = select(r, u, g == 1.0);
    r = select(r, 0.0, zero);
    return fin(select(r, 1.0, g == 0.0));
}

// The alpha weight alpha y + (1 - alpha) (1 - y), where alpha >= 0.
fn alpha_weight(l: Ext, y: Ext, alpha: f32) -> Ext {
    if (alpha < 0.0) {
        return l;
    }
    return ext_mul(l, ext_add(ext_mul(fin(alpha), y), ext_mul(fin(1.0 - alpha), ext_sub(fin(1.0), y))));
}

// torchvision's expression: ce (1 - p_t)^gamma, p_t = p y + (1 - p) (1 - y).
fn focal_ref(x: Ext, y: Ext, alpha: f32, gamma: f32) -> Ext {
    let ce = bce_logits_ref(x, y, fin(1.0));
    let p = ext_sigmoid(x);
    let pt = ext_add(ext_mul(p, y), ext_mul(ext_sub(fin(1.0), p), ext_sub(fin(1.0), y)));
    return alpha_weight(ext_mul(ce, ext_pow(ext_sub(fin(1.0), pt), gamma)), y, alpha);
}

// xlogy(y, y) - y x, or exp(y) (y - x) for log targets. For a finite target
// y >= 0, y (ln y - x) (one rounding less); y = 0, from its bits, contributes
// -(0 x) (a subnormal target is not 0, also where hardware flushes it).
fn kl_div(x: f32, y: f32, log_target: bool) -> Ext {
    let xe = ext(x);
    let ye = ext(y);
    if (log_target) {
        return ext_mul(ext_exp(ye), ext_sub(ye, xe));
    }
    if (is_zero(y)) {
        return ext_neg(ext_mul(ye, xe));
    }
    if (is_fin(x) && is_fin(y) && !sign_bit(y)) {
        return ext(y * (ln(y) - x));
    }
    return ext_sub(ext_mul(ye, ext_ln(ye)), ext_mul(ye, xe));
}

// y ln y - y + ln(2 pi y) / 2 where y > 1 (NaN targets keep it, as the
// reference's mask on y <= 1 does).
fn stirling(y: Ext) -> Ext {
    if (y.k == K_NAN || ext_lt(fin(1.0), y)) {
        let half_log = ext_mul(fin(0.5), ext_ln(ext_mul(fin(6.283185307179586), y)));
        return ext_add(ext_sub(ext_mul(y, ext_ln(y)), y), half_log);
    }
    return fin(0.0);
}

// exp(x) - y x for a log rate, x - y ln(x + eps) for a rate (-inf where x +
// eps is 0, as the reference's); `full` adds the Stirling term.
fn poisson_nll(x: f32, y: f32, log_input: bool, full: bool, eps: f32) -> Ext {
    let xe = ext(x);
    let ye = ext(y);
    var l: Ext;
    if (log_input) {
        l = ext_sub(ext_exp(xe), ext_mul(ye, xe));
    } else {
        l = ext_sub(xe, ext_mul(ye, ext_ln(ext_add(xe, fin(eps)))));
    }
    if (full) {
        l = ext_add(l, stirling(ye));
    }
    return l;
}

// The variance clamped below at eps (-inf too); NaN stays NaN.
fn clamp_var(variance: f32, eps: f32) -> Ext {
    let v = ext(variance);
    if (ext_lt(v, fin(eps))) {
        return fin(eps);
    }
    return v;
}

// (ln v + (x - y)^2 / v) / 2 with v the clamped variance; `full` adds
// ln(2 pi) / 2.
fn gaussian_nll(x: f32, y: f32, variance: f32, full: bool, eps: f32) -> Ext {
    let v = clamp_var(variance, eps);
    let d = ext_sub(ext(x), ext(y));
    var l = ext_mul(fin(0.5), ext_add(ext_ln(v), ext_div(ext_mul(d, d), v)));
    if (full) {
        l = ext_add(l, fin(0.9189385332046727));
    }
    return l;
}

// The values element i of the slice reads, each loaded once.
struct Elem {
    x: f32,
    y: f32,
    w: f32,
    a: f32,
}

fn pos_weight(e: Elem) -> f32 {
    if (AUX) {
        return e.a;
    }
    return 1.0;
}

// An element's loss and denominator contribution.
struct Item {
    l: Ext,
    d: Ext,
}

fn value(e: Elem) -> Item {
    let x = e.x;
    let y = e.y;
    let w = ext(e.w);
    let one = fin(1.0);
    let d = ext_sub(ext(x), ext(y));
    switch LOSS {
        case MSE: { return Item(ext_mul(w, mse(d)), w); }
        case L1: { return Item(ext_mul(w, l1(d)), w); }
        case HUBER: { return Item(ext_mul(w, huber(d, params.p0)), one); }
        case SMOOTH_L1: { return Item(smooth_l1(d, params.p0), one); }
        case LOG_COSH: { return Item(log_cosh(d), one); }
        case QUANTILE: { return Item(quantile(x, y, e.a), one); }
        case BCE: { return Item(ext_mul(w, bce(x, y)), one); }
        case BCE_WITH_LOGITS: { return Item(ext_mul(w, bce_with_logits(x, y, pos_weight(e))), one); }
        case SIGMOID_FOCAL: { return Item(sigmoid_focal(x, y, params.p0, params.p1), one); }
        case KL_DIV: { return Item(kl_div(x, y, FLAG0), one); }
        case POISSON_NLL: {
            return Item(poisson_nll(x, y, FLAG0, FLAG1, params.p2), one);
        }
        case GAUSSIAN_NLL: {
            return Item(gaussian_nll(x, y, e.a, FLAG0, params.p1), one);
        }
        default: { return Item(ext_kind(K_NAN), one); }
    }
}

// The backward of each loss as PyTorch's autograd computes it (conventions
// on the CPU twin in src/cpu/pointwise.rs), on `Ext` as the forward.

// x as an integer that orders as the values do (±0 alike), for finite x.
fn ordered(x: f32) -> i32 {
    let b = bitcast<i32>(x);
    return select(b, -(b & 0x7fffffff), b < 0);
}

// sign(d) of d = x - y as torch's sign (0 at NaN). For finite x and y it is
// read from their order, not from d: IEEE's gradual underflow makes x - y = 0
// only where x = y, but hardware that flushes subnormals to zero turns a
// difference below 2^-126 into 0.
fn sign_diff(x: f32, y: f32, d: Ext) -> f32 {
    let kx = ordered(x);
    let ky = ordered(y);
    let s = select(select(0.0, -1.0, kx < ky), 1.0, kx > ky);
    return select(ext_sign(d), s, is_fin(x) && is_fin(y));
}

// d = x - y; |d| == delta takes the linear branch.
fn huber_grad(d: Ext, delta: f32) -> Ext {
    if (d.k == K_NAN) { return d; }
    if (ext_le(d, fin(-delta))) { return fin(-delta); }
    if (ext_le(fin(delta), d)) { return fin(delta); }
    return d;
}

// beta = 0 is l1's sign (0 for NaN, as torch's sign).
fn smooth_l1_grad(x: f32, y: f32, d: Ext, beta: f32) -> Ext {
    if (beta == 0.0) { return fin(sign_diff(x, y, d)); }
    if (d.k == K_NAN) { return d; }
    if (ext_le(d, fin(-beta))) { return fin(-1.0); }
    if (ext_le(fin(beta), d)) { return fin(1.0); }
    return fin(d.v / beta);
}

// tanh(d) through expm1, which keeps its relative precision for small |d|
// where the built-in may cancel; ±1 past |d| = 20 and at ±inf.
fn log_cosh_grad(d: Ext) -> Ext {
    if (d.k == K_NAN) { return d; }
    let a = ext_abs(d);
    if (ext_lt(fin(20.0), a)) {
        return fin(ext_sign(d));
    }
    let m = expm1(2.0 * a.v);
    return fin(select(-1.0, 1.0, d.v >= 0.0) * (m / (m + 2.0)));
}

// torch.maximum of the two branches: half the gradient to each at a tie, the
// whole to both for NaN.
fn quantile_grad(x: f32, y: f32, q: f32) -> Ext {
    let e = ext_sub(ext(y), ext(x));
    let qe = ext(q);
    let under = ext_mul(ext_add(qe, fin(-1.0)), e);
    let over = ext_mul(qe, e);
    if (ext_lt(over, under)) { return ext_sub(fin(1.0), qe); }
    if (ext_lt(under, over)) { return ext_neg(qe); }
    if (ext_eq(under, over)) { return ext_sub(fin(0.5), qe); }
    return ext_sub(fin(1.0), ext_mul(fin(2.0), qe));
}

// PyTorch's backward, not the clamped forward's derivative: up to 1e12 at
// x in {0, 1}. The literal is the float 1e-12 PyTorch uses.
fn bce_grad(x: f32, y: f32) -> Ext {
    let xe = ext(x);
    var d = ext_mul(ext_sub(fin(1.0), xe), xe);
    if (ext_lt(d, fin(1e-12))) {
        d = fin(1e-12);
    }
    return ext_div(ext_sub(xe, ext(y)), d);
}

// (pw y + 1 - y) sigma(x) - pw y, for finite arguments written as
// (1 - y) sigma(x) - pw y sigma(-x) so that sigma(x) - 1 never cancels;
// without pos_weight the reference's is sigma(x) - y.
fn bce_with_logits_grad(x: f32, y: f32, pw: f32) -> Ext {
    if (is_fin(x) && is_fin(y) && is_fin(pw)) {
        return bce_with_logits_grad_fin(x, y, pw);
    }
    let s = ext_sigmoid(ext(x));
    let ye = ext(y);
    if (!AUX) {
        return ext_sub(s, ye);
    }
    let t = ext_mul(ext(pw), ye);
    return ext_sub(ext_mul(ext_sub(ext_add(t, fin(1.0)), ye), s), t);
}

fn bce_with_logits_grad_fin(x: f32, y: f32, pw: f32) -> Ext {
    let g = logistic(x);
    return ext((1.0 - y) * g.p - pw * y * g.r);
}

// The chain through torchvision's expression, u = 1 - p_t:
// ce' u^gamma + ce gamma u^(gamma - 1) u' (the second term 0 at gamma = 0,
// pow's backward at exponent 0). For finite arguments u and p (1 - p) are
// formed from sigma(x) and sigma(-x) so they keep their precision near
// saturation.
fn sigmoid_focal_grad(x: f32, y: f32, alpha: f32, gamma: f32) -> Ext {
    if (!(is_fin(x) && is_fin(y))) {
        return focal_grad_ref(ext(x), ext(y), alpha, gamma);
    }
    return sigmoid_focal_grad_fin(x, y, alpha, gamma, false);
}

// `sigmoid_focal_grad` of finite arguments.
fn sigmoid_focal_grad_fin(x: f32, y: f32, alpha: f32, gamma: f32, unit: bool) -> Ext {
    let lg = logistic(x);
    let p = lg.p;
    let r = lg.r;
    var u = y * r + (1.0 - y) * p;
    // The float64 reference's p_t rounds to exactly 1 past these logits (u =
    // 0 there), where float32 still resolves u: follow the reference.
    if ((y == 1.0 && x >= 36.736801) || (y == 0.0 && x <= -37.42995)) {
        u = 0.0;
    }
    // Nor does the reference's u = 1 - p_t resolve a u below 2^-126 (a
    // difference from 1 is at least 2^-53): such a u is 0, taken from the
    // bits, so that hardware that flushes subnormals to zero gives the same.
    if ((bitcast<u32>(u) & 0x7f800000u) == 0u) {
        u = 0.0;
    }
    // gamma u^(gamma - 1) is infinite at u = 0 for 0 < gamma < 1, and meets a
    // zero there: NaN, as in PyTorch.
    if (u == 0.0 && gamma > 0.0 && gamma < 1.0) {
        return ext_kind(K_NAN);
    }
    var g = ext_mul(fin((1.0 - y) * p - y * r), focal_pow(u, gamma, unit));
    if (gamma != 0.0) {
        let focal = ext_mul(fin(gamma), focal_pow(u, gamma - 1.0, unit));
        let du = (1.0 - 2.0 * y) * (p * r);
        g = ext_add(g, ext_mul(ext_mul(bce_logits_of(lg, x, y, 1.0), focal), fin(du)));
    }
    return alpha_weight(g, fin(y), alpha);
}

// The reference's chain: (p - y) u^gamma + ce gamma u^(gamma - 1) du,
// u = 1 - p_t, du = (1 - 2y) p (1 - p).
fn focal_grad_ref(x: Ext, y: Ext, alpha: f32, gamma: f32) -> Ext {
    let p = ext_sigmoid(x);
    let q = ext_sub(fin(1.0), p);
    let u = ext_sub(fin(1.0), ext_add(ext_mul(p, y), ext_mul(q, ext_sub(fin(1.0), y))));
    var g = ext_mul(ext_sub(p, y), ext_pow(u, gamma));
    if (gamma != 0.0) {
        let du = ext_mul(ext_sub(fin(1.0), ext_mul(fin(2.0), y)), ext_mul(p, q));
        let focal = ext_mul(fin(gamma), ext_pow(u, gamma - 1.0));
        g = ext_add(g, ext_mul(ext_mul(bce_logits_ref(x, y, fin(1.0)), focal), du));
    }
    return alpha_weight(g, y, alpha);
}

// The Stirling term does not depend on x.
fn poisson_nll_grad(x: f32, y: f32, log_input: bool, eps: f32) -> Ext {
    let xe = ext(x);
    let ye = ext(y);
    if (log_input) {
        return ext_sub(ext_exp(xe), ye);
    }
    return ext_sub(fin(1.0), ext_div(ye, ext_add(xe, fin(eps))));
}

// The clamp of the variance has no gradient.
fn gaussian_nll_grad(d: Ext, variance: f32, eps: f32) -> Ext {
    return ext_div(d, clamp_var(variance, eps));
}

fn kl_div_grad(y: f32, log_target: bool) -> Ext {
    if (log_target) {
        return ext_neg(ext_exp(ext(y)));
    }
    return ext_neg(ext(y));
}

// d loss / dx of one element times s, the upstream scaled by the reduction.
// s meets the weight first: g / 0 * 0 is NaN, as in PyTorch.
fn slope(e: Elem, s: Ext) -> Ext {
    let x = e.x;
    let y = e.y;
    let sw = ext_mul(s, ext(e.w));
    let d = ext_sub(ext(x), ext(y));
    switch LOSS {
        case MSE: { return ext_mul(sw, ext_mul(fin(2.0), d)); }
        case L1: { return ext_mul(sw, fin(sign_diff(x, y, d))); }
        case HUBER: { return ext_mul(sw, huber_grad(d, params.p0)); }
        case SMOOTH_L1: { return ext_mul(s, smooth_l1_grad(x, y, d, params.p0)); }
        case LOG_COSH: { return ext_mul(s, log_cosh_grad(d)); }
        case QUANTILE: { return ext_mul(s, quantile_grad(x, y, e.a)); }
        case BCE: { return ext_mul(sw, bce_grad(x, y)); }
        case BCE_WITH_LOGITS: { return ext_mul(sw, bce_with_logits_grad(x, y, pos_weight(e))); }
        case SIGMOID_FOCAL: { return ext_mul(s, sigmoid_focal_grad(x, y, params.p0, params.p1)); }
        case KL_DIV: { return ext_mul(s, kl_div_grad(y, FLAG0)); }
        case POISSON_NLL: { return ext_mul(s, poisson_nll_grad(x, y, FLAG0, params.p2)); }
        case GAUSSIAN_NLL: { return ext_mul(s, gaussian_nll_grad(d, e.a, params.p1)); }
        default: { return ext_kind(K_NAN); }
    }
}

// Rare elements. Where a loss has a faster form for finite arguments, the
// kernels evaluate every element with it (`value_fin`, `slope_fin`, on
// finite stand-ins for a rare element) and then the rare elements of each
// run of RUN with the full expressions (`value`, `slope`), in a loop of their
// own: a CPU adapter runs both sides of a branch for every element, so the
// reference expressions behind `value`'s test cost as much as the loss
// itself when they sit in the same loop; a loop over a run's rare elements
// runs once (masked off) where there are none. On a GPU the loop runs
// no iterations.
//
// A thread sums each run apart and adds it to its total once the run's rare
// elements have joined it: the host's per_thread (up to 512 on a CPU adapter,
// where fewer workgroups save their barriers) then costs at most RUN + 16
// roundings of a running sum, not per_thread, and no test per element.
const RUN: u32 = 32u;

// Whether LOSS has a fast form (`rare` can be true).
fn splits() -> bool {
    return LOSS == BCE_WITH_LOGITS || LOSS == SIGMOID_FOCAL || LOSS == KL_DIV || LOSS == POISSON_NLL
        || LOSS == GAUSSIAN_NLL || LOSS == BCE || LOSS == QUANTILE || LOSS == MSE || LOSS == L1
        || LOSS == HUBER || LOSS == SMOOTH_L1 || LOSS == LOG_COSH;
}

// |v| below 2^k for a finite v, from the bits (2^k a power of two).
fn below(v: f32, k: u32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) < ((127u + k) << 23u);
}

// Whether element e needs the full expressions: an argument the fast form
// does not take (not finite, or where its steps could overflow).
fn rare(e: Elem) -> bool {
    let x = e.x;
    let y = e.y;
    let both = is_fin(x) && is_fin(y);
    switch LOSS {
        // Below 2^62, the square of x - y is finite too, and mse's fast form
        // needs no classification; below 2^126 x - y cannot overflow.
        case MSE: { return !(below(x, 62u) && below(y, 62u)); }
        // huber's too, with a delta below 2^62 (its linear side then stays
        // below 2^125).
        case HUBER: { return !(below(x, 62u) && below(y, 62u) && below(params.p0, 62u)); }
        case L1, SMOOTH_L1, LOG_COSH: { return !(below(x, 126u) && below(y, 126u)); }
        case BCE_WITH_LOGITS: { return !(both && is_fin(pos_weight(e))); }
        // focal_pow's fast form takes targets in [0, 1] only.
        case SIGMOID_FOCAL: { return !(both && y >= 0.0 && y <= 1.0); }
        // A probability outside [0, 1] gives NaN in both forms.
        case BCE: { return !(both && below(x, 60u) && below(y, 60u)); }
        case QUANTILE: { return !(both && is_fin(e.a) && below(x, 60u) && below(y, 60u) && below(e.a, 60u)); }
        case KL_DIV: {
            if (FLAG0) {
                return !(both && below(x, 60u) && below(y, 60u) && y < 80.0);
            }
            return !(both && (!sign_bit(y) || is_zero(y)));
        }
        case POISSON_NLL: {
            let ok = both && below(x, 60u) && below(y, 60u);
            if (FLAG0) {
                return !(ok && x < 80.0);
            }
            return !(ok && x + params.p2 > 0.0);
        }
        case GAUSSIAN_NLL: {
            // d^2 / v stays below 2^122 for |x|, |y| < 2^30 and v >= 2^-60.
            return !(both && is_fin(e.a) && below(x, 30u) && below(y, 30u) && max(e.a, params.p1) >= 0x1p-60);
        }
        default: { return false; }
    }
}

// The fast forms of kl_div, poisson_nll and gaussian_nll and their
// gradients: the same operations as the full expressions, in f32, for the
// arguments `rare` lets through (a final overflow told from its bits).
fn kl_div_fin(x: f32, y: f32) -> Ext {
    if (FLAG0) {
        return ext(exp(y) * (y - x));
    }
    let zero = is_zero(y);
    return ext(select(y * (ln(select(y, 1.0, zero)) - x), -(y * x), zero));
}

// The clamped logs of bce from `bce`, and the sum in f32 for a target
// below 2^60 (the logs are at least -100).
fn bce_fin(x: f32, y: f32) -> Ext {
    let l = bce_logs(x);
    return ext_pick(ext((y - 1.0) * l.y - y * l.x), ext_kind(K_NAN), l.z != 0.0);
}

// torch.maximum((q - 1) e, q e) of finite arguments below 2^60.
fn quantile_fin(x: f32, y: f32, q: f32) -> Ext {
    let e = y - x;
    return fin(max((q - 1.0) * e, q * e));
}

// `bce_grad` and `quantile_grad` of arguments `rare` lets through.
fn bce_grad_fin(x: f32, y: f32) -> Ext {
    return ext((x - y) / max((1.0 - x) * x, 1e-12));
}

fn quantile_grad_fin(x: f32, y: f32, q: f32) -> Ext {
    let e = y - x;
    let under = (q - 1.0) * e;
    let over = q * e;
    return fin(select(select(0.5 - q, -q, under < over), 1.0 - q, over < under));
}

fn poisson_nll_fin(x: f32, y: f32) -> Ext {
    let log_input = FLAG0;
    var l = select(x - y * ln(select(x + params.p2, 1.0, log_input)), exp(select(0.0, x, log_input)) - y * x, log_input);
    if (FLAG1) {
        let yy = max(y, 1.0);
        l = l + select(0.0, (yy * ln(yy) - yy) + 0.5 * ln(6.283185307179586 * yy), y > 1.0);
    }
    return ext(l);
}

fn poisson_nll_grad_fin(x: f32, y: f32) -> Ext {
    let log_input = FLAG0;
    return ext(select(1.0 - y / select(x + params.p2, 1.0, log_input), exp(select(0.0, x, log_input)) - y, log_input));
}

fn gaussian_nll_fin(x: f32, y: f32, variance: f32) -> Ext {
    let v = max(variance, params.p1);
    let d = x - y;
    var l = 0.5 * (ln(v) + d * d / v);
    if (FLAG0) {
        l = l + 0.9189385332046727;
    }
    return ext(l);
}

// e, or finite stand-ins for a rare element (whose fast results are
// dropped), so that the fast forms never compute with an infinity or NaN.
fn fin_elem(e: Elem, r: bool) -> Elem {
    return Elem(select(e.x, 0.0, r), select(e.y, 0.0, r), select(e.w, 1.0, r), select(e.a, 1.0, r));
}

// The upstream of element i: `s` for all, or its own where `each` (the
// kernel files that follow declare the `upstream` binding).
fn upstream_at(s: Ext, each: bool, i: u32) -> Ext {
    if (each) {
        return ext(upstream[i]);
    }
    return s;
}

// An element's item into a thread's sums (the finite parts) and kinds,
// unless `skip` (a rare element's fast results, which the rare loop
// replaces).
fn add_item(part: ptr<function, vec4<f32>>, kinds: ptr<function, u32>, v: Item, skip: bool) {
    *kinds = *kinds | select(kind_flag(v.l.k) | (kind_flag(v.d.k) << 4u), 0u, skip);
    *part = *part + select(vec4(v.l.v, v.d.v, 0.0, 0.0), vec4(0.0), skip);
}

// l times the weight where there is one: without, no product to classify.
fn by_weight(l: Ext, w: Ext) -> Ext {
    if (WEIGHT) {
        return ext_mul(w, l);
    }
    return l;
}

// `value` of an element that is not rare.
fn value_fin(e: Elem) -> Item {
    let one = fin(1.0);
    let w = ext(e.w);
    let d = fin(e.x - e.y);
    switch LOSS {
        // Finite below the bounds `rare` sets: unclassified.
        case MSE: { return Item(by_weight(fin(d.v * d.v), w), w); }
        case L1: { return Item(by_weight(fin(abs(d.v)), w), w); }
        case HUBER: { return Item(by_weight(fin(huber_of(abs(d.v), params.p0)), w), one); }
        case SMOOTH_L1: { return Item(smooth_l1(d, params.p0), one); }
        case LOG_COSH: { return Item(log_cosh(d), one); }
        case BCE_WITH_LOGITS: {
            return Item(ext_mul(ext(e.w), bce_with_logits_fin(e.x, e.y, pos_weight(e))), one);
        }
        case SIGMOID_FOCAL: { return Item(sigmoid_focal_fin(e.x, e.y, params.p0, params.p1, true), one); }
        case KL_DIV: { return Item(kl_div_fin(e.x, e.y), one); }
        case BCE: { return Item(ext_mul(ext(e.w), bce_fin(e.x, e.y)), one); }
        case QUANTILE: { return Item(quantile_fin(e.x, e.y, e.a), one); }
        case POISSON_NLL: { return Item(poisson_nll_fin(e.x, e.y), one); }
        case GAUSSIAN_NLL: { return Item(gaussian_nll_fin(e.x, e.y, e.a), one); }
        default: { return value(e); }
    }
}

// `slope` of an element that is not rare.
fn slope_fin(e: Elem, s: Ext) -> Ext {
    let sw = ext_mul(s, ext(e.w));
    let d = fin(e.x - e.y);
    switch LOSS {
        case MSE: { return ext_mul(sw, fin(2.0 * d.v)); }
        case L1: { return ext_mul(sw, fin(sign_diff(e.x, e.y, d))); }
        case HUBER: { return ext_mul(sw, huber_grad(d, params.p0)); }
        case SMOOTH_L1: { return ext_mul(s, smooth_l1_grad(e.x, e.y, d, params.p0)); }
        case LOG_COSH: { return ext_mul(s, log_cosh_grad(d)); }
        case BCE_WITH_LOGITS: {
            return ext_mul(ext_mul(s, ext(e.w)), bce_with_logits_grad_fin(e.x, e.y, pos_weight(e)));
        }
        case SIGMOID_FOCAL: { return ext_mul(s, sigmoid_focal_grad_fin(e.x, e.y, params.p0, params.p1, true)); }
        case POISSON_NLL: { return ext_mul(s, poisson_nll_grad_fin(e.x, e.y)); }
        case BCE: { return ext_mul(ext_mul(s, ext(e.w)), bce_grad_fin(e.x, e.y)); }
        case QUANTILE: { return ext_mul(s, quantile_grad_fin(e.x, e.y, e.a)); }
        case GAUSSIAN_NLL: { return ext_mul(s, ext((e.x - e.y) / max(e.a, params.p1))); }
        default: { return slope(e, s); }
    }
}
