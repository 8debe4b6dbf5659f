// Elementwise losses, each fused with its reduction: one pass maps every
// element and sums (loss, denominator) per workgroup; finalize.wgsl combines
// the partials. With `write_items` set it writes the per-element losses instead.
// A dispatch covers one slice of the input (inputs may be longer than one
// binding): `base` is the slice's first element in the whole tensor.
//
// With GRAD the same pass also writes each element's gradient, read from the
// same loads: g * w * dloss/dx, g being the upstream scaled by the reduction.
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
    write_items: u32,
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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
// One value per element of the slice, or a single one for every element.
@group(0) @binding(4) var<storage, read> upstream: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

override GRAD: bool = false;

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

fn mse(x: f32, y: f32) -> f32 {
    let e = x - y;
    return e * e;
}

fn l1(x: f32, y: f32) -> f32 {
    return abs(x - y);
}

// The quadratic branch is strict (z < delta), as in the reference.
fn huber(x: f32, y: f32, delta: f32) -> f32 {
    let z = abs(x - y);
    return select(delta * (z - 0.5 * delta), 0.5 * z * z, z < delta);
}

// beta == 0 never takes the quadratic branch, which makes it L1.
fn smooth_l1(x: f32, y: f32, beta: f32) -> f32 {
    let z = abs(x - y);
    return select(z - 0.5 * beta, 0.5 * z * z / beta, z < beta);
}

// The stable form |e| + log1p(e^-2|e|) - log 2 cancels for small |e|: use the
// Taylor series of log cosh there.
fn log_cosh(x: f32, y: f32) -> f32 {
    let e = x - y;
    let a = abs(e);
    if (a < 0.25) {
        let e2 = e * e;
        var p = 31.0 / 14175.0;
        p = p * e2 - 17.0 / 2520.0;
        p = p * e2 + 1.0 / 45.0;
        p = p * e2 - 1.0 / 12.0;
        p = p * e2 + 0.5;
        return e2 * p;
    }
    return a + log1p(exp(-2.0 * a)) - LN2;
}

fn quantile(x: f32, y: f32, q: f32) -> f32 {
    let e = y - x;
    let lo = (q - 1.0) * e;
    let hi = q * e;
    // torch.maximum: NaN if either is (q = 0 or 1 times an infinite error).
    return select(select(lo, hi, hi > lo), nan(), is_nan(lo) || is_nan(hi));
}

// Each log is clamped at -100 before it meets the target, so 0 * log(0) never
// appears. The logs of 0 (x = 0 from its bits, x = 1) take the clamp directly
// rather than comparing a -inf with it.
fn bce(x: f32, y: f32) -> f32 {
    var lx = -100.0;
    if ((bitcast<u32>(x) & 0x7fffffffu) != 0u) {
        lx = clamp_min(ln(x), -100.0);
    }
    var l1x = -100.0;
    if (x != 1.0) {
        l1x = clamp_min(log1p(-x), -100.0);
    }
    return (y - 1.0) * l1x - y * lx;
}

// (1 - y) x + lw softplus(-x), lw = 1 + (pw - 1) y, rearranged per sign of x
// so that no large terms cancel.
fn bce_with_logits(x: f32, y: f32, pw: f32) -> f32 {
    let lw = 1.0 + (pw - 1.0) * y;
    let tail = lw * log1p(exp(-abs(x)));
    if (x >= 0.0) {
        return (1.0 - y) * x + tail;
    }
    // The reference's (1 - y) x - lw log(sigmoid(x)) is -inf + inf or 0 * inf
    // at x = -inf, for every y: NaN, which the rearranged form would not give.
    if (kind_of(x) == K_NINF) {
        return kind_bits(K_NAN);
    }
    return -pw * y * x + tail;
}

// torchvision's sigmoid focal loss; 1 - p_t is formed from sigma(x) and
// sigma(-x) directly so it keeps its precision when p_t is near 1.
fn sigmoid_focal(x: f32, y: f32, alpha: f32, gamma: f32) -> f32 {
    let ce = bce_with_logits(x, y, 1.0);
    let u = y * sigmoid(-x) + (1.0 - y) * sigmoid(x);
    var l = ce * pow_gamma(u, gamma);
    if (alpha >= 0.0) {
        l = l * (alpha * y + (1.0 - alpha) * (1.0 - y));
    }
    return l;
}

// xlogy(y, y) - y x, or exp(y) (y - x) for log targets. y = 0 contributes 0
// unless x = -inf (0 * inf is NaN, as in the reference).
fn kl_div(x: f32, y: f32, log_target: bool) -> f32 {
    if (log_target) {
        return exp(y) * (y - x);
    }
    if (y == 0.0) {
        return -(y * x);
    }
    return y * (ln(y) - x);
}

// y ln y - y + ln(2 pi y) / 2 where y > 1 (NaN targets keep it, as the
// reference's mask on y <= 1 does).
fn stirling(y: f32) -> f32 {
    if (y > 1.0 || is_nan(y)) {
        return y * ln(y) - y + 0.5 * ln(6.283185307179586 * y);
    }
    return 0.0;
}

// exp(x) - y x for a log rate, x - y ln(x + eps) for a rate; `full` adds
// the Stirling term.
fn poisson_nll(x: f32, y: f32, log_input: bool, full: bool, eps: f32) -> f32 {
    var l: f32;
    if (log_input) {
        l = exp(x) - y * x;
    } else {
        l = x - y * ln(x + eps);
    }
    if (full) {
        l = l + stirling(y);
    }
    return l;
}

// The variance clamped below at eps; NaN stays NaN.
fn clamp_var(variance: f32, eps: f32) -> f32 {
    return select(variance, eps, variance < eps);
}

// (ln v + (x - y)^2 / v) / 2 with v the clamped variance; `full` adds
// ln(2 pi) / 2.
fn gaussian_nll(x: f32, y: f32, variance: f32, full: bool, eps: f32) -> f32 {
    let v = clamp_var(variance, eps);
    let d = x - y;
    var l = 0.5 * (ln(v) + d * d / v);
    if (full) {
        l = l + 0.9189385332046727;
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

fn load(i: u32) -> Elem {
    var e: Elem;
    e.x = input[i];
    e.y = targets[i / params.per_target];
    let g = params.base + i;
    e.w = 1.0;
    if (params.w_sliced != 0u) {
        e.w = weight[i];
    } else if (params.w_len != 0u) {
        e.w = weight[(g / params.w_inner) % params.w_len];
    }
    e.a = params.p0;
    if (params.a_sliced != 0u) {
        e.a = aux[i];
    } else if (params.a_len != 0u) {
        e.a = aux[(g / params.a_inner) % params.a_len];
    }
    return e;
}

fn pos_weight(e: Elem) -> f32 {
    if (params.a_len != 0u) {
        return e.a;
    }
    return 1.0;
}

// (loss, denominator contribution) of one element.
fn value(e: Elem) -> vec2<f32> {
    let x = e.x;
    let y = e.y;
    let w = e.w;
    switch LOSS {
        case MSE: { return vec2(w * mse(x, y), w); }
        case L1: { return vec2(w * l1(x, y), w); }
        case HUBER: { return vec2(w * huber(x, y, params.p0), 1.0); }
        case SMOOTH_L1: { return vec2(smooth_l1(x, y, params.p0), 1.0); }
        case LOG_COSH: { return vec2(log_cosh(x, y), 1.0); }
        case QUANTILE: { return vec2(quantile(x, y, e.a), 1.0); }
        case BCE: { return vec2(w * bce(x, y), 1.0); }
        case BCE_WITH_LOGITS: { return vec2(w * bce_with_logits(x, y, pos_weight(e)), 1.0); }
        case SIGMOID_FOCAL: { return vec2(sigmoid_focal(x, y, params.p0, params.p1), 1.0); }
        case KL_DIV: { return vec2(kl_div(x, y, params.p0 != 0.0), 1.0); }
        case POISSON_NLL: {
            return vec2(poisson_nll(x, y, params.p0 != 0.0, params.p1 != 0.0, params.p2), 1.0);
        }
        case GAUSSIAN_NLL: {
            return vec2(gaussian_nll(x, y, e.a, params.p0 != 0.0, params.p1), 1.0);
        }
        default: { return vec2(nan(), 1.0); }
    }
}

// The backward of each loss as PyTorch's autograd computes it (conventions
// on the CPU twin in src/cpu/pointwise.rs).

// sign with sign(0) = 0 and NaN kept.
fn sgn(d: f32) -> f32 {
    return select(select(d, -1.0, d < 0.0), 1.0, d > 0.0);
}

// |x - y| == delta takes the linear branch.
fn huber_grad(x: f32, y: f32, delta: f32) -> f32 {
    let d = x - y;
    if (d <= -delta) { return -delta; }
    if (d >= delta) { return delta; }
    return d;
}

fn smooth_l1_grad(x: f32, y: f32, beta: f32) -> f32 {
    let d = x - y;
    if (beta == 0.0) { return sgn(d); }
    if (d <= -beta) { return -1.0; }
    if (d >= beta) { return 1.0; }
    return d / beta;
}

// tanh through expm1, which keeps its relative precision for small |e| where
// the built-in may cancel.
fn log_cosh_grad(x: f32, y: f32) -> f32 {
    let e = x - y;
    let a = abs(e);
    if (a > 20.0) {
        return sgn(e);
    }
    let m = expm1(2.0 * a);
    return select(-1.0, 1.0, e >= 0.0) * (m / (m + 2.0));
}

// torch.maximum of the two branches: half the gradient to each at a tie, the
// whole to both for NaN.
fn quantile_grad(x: f32, y: f32, q: f32) -> f32 {
    let e = y - x;
    let under = (q - 1.0) * e;
    let over = q * e;
    if (under > over) { return 1.0 - q; }
    if (over > under) { return -q; }
    if (under == over) { return 0.5 - q; }
    return 1.0 - 2.0 * q;
}

// PyTorch's backward, not the clamped forward's derivative: up to 1e12 at
// x in {0, 1}. The literal is the float 1e-12 PyTorch uses.
fn bce_grad(x: f32, y: f32) -> f32 {
    let d = (1.0 - x) * x;
    return (x - y) / select(d, 1e-12, d < 1e-12);
}

// (pw y + 1 - y) sigma(x) - pw y, written as (1 - y) sigma(x) - pw y sigma(-x)
// so that sigma(x) - 1 never cancels.
fn bce_with_logits_grad(x: f32, y: f32, pw: f32) -> f32 {
    return (1.0 - y) * sigmoid(x) - pw * y * sigmoid(-x);
}

// The chain through torchvision's expression, u = 1 - p_t:
// ce' u^gamma + ce gamma u^(gamma - 1) u', with u and p (1 - p) formed from
// sigma(x) and sigma(-x) so they keep their precision near saturation.
fn sigmoid_focal_grad(x: f32, y: f32, alpha: f32, gamma: f32) -> f32 {
    let p = sigmoid(x);
    let r = sigmoid(-x);
    var u = y * r + (1.0 - y) * p;
    // The float64 reference's p_t rounds to exactly 1 past these logits (u =
    // 0 there), where float32 still resolves u: follow the reference.
    if ((y == 1.0 && x >= 36.736801) || (y == 0.0 && x <= -37.42995)) {
        u = 0.0;
    }
    // gamma u^(gamma - 1) is infinite at u = 0 for 0 < gamma < 1, and meets a
    // zero there: NaN, as in PyTorch.
    if (u == 0.0 && gamma > 0.0 && gamma < 1.0) {
        return nan();
    }
    var focal = 0.0;
    if (gamma != 0.0) {
        focal = gamma * pow_gamma(u, gamma - 1.0);
    }
    let ce = bce_with_logits(x, y, 1.0);
    let du = (1.0 - 2.0 * y) * (p * r);
    var g = ((1.0 - y) * p - y * r) * pow_gamma(u, gamma) + ce * focal * du;
    if (alpha >= 0.0) {
        g = g * (alpha * y + (1.0 - alpha) * (1.0 - y));
    }
    return g;
}

// The Stirling term does not depend on x.
fn poisson_nll_grad(x: f32, y: f32, log_input: bool, eps: f32) -> f32 {
    if (log_input) {
        return exp(x) - y;
    }
    return 1.0 - y / (x + eps);
}

// The clamp of the variance has no gradient.
fn gaussian_nll_grad(x: f32, y: f32, variance: f32, eps: f32) -> f32 {
    return (x - y) / clamp_var(variance, eps);
}

fn kl_div_grad(y: f32, log_target: bool) -> f32 {
    if (log_target) {
        return -exp(y);
    }
    return -y;
}

// d loss / dx of one element times s, the upstream scaled by the reduction.
// s meets the weight first: g / 0 * 0 is NaN, as in PyTorch.
fn slope(e: Elem, s: f32) -> f32 {
    let x = e.x;
    let y = e.y;
    let sw = s * e.w;
    switch LOSS {
        case MSE: { return sw * (2.0 * (x - y)); }
        case L1: { return sw * sgn(x - y); }
        case HUBER: { return sw * huber_grad(x, y, params.p0); }
        case SMOOTH_L1: { return s * smooth_l1_grad(x, y, params.p0); }
        case LOG_COSH: { return s * log_cosh_grad(x, y); }
        case QUANTILE: { return s * quantile_grad(x, y, e.a); }
        case BCE: { return sw * bce_grad(x, y); }
        case BCE_WITH_LOGITS: { return sw * bce_with_logits_grad(x, y, pos_weight(e)); }
        case SIGMOID_FOCAL: { return s * sigmoid_focal_grad(x, y, params.p0, params.p1); }
        case KL_DIV: { return s * kl_div_grad(y, params.p0 != 0.0); }
        case POISSON_NLL: { return s * poisson_nll_grad(x, y, params.p0 != 0.0, params.p2); }
        case GAUSSIAN_NLL: { return s * gaussian_nll_grad(x, y, e.a, params.p1); }
        default: { return nan(); }
    }
}

// The upstream of a reduced call, scaled by its reduction.
fn reduced_scale() -> f32 {
    let g = upstream[0];
    if (params.scale_mode == 1u) {
        return g / params.divisor;
    }
    if (params.scale_mode == 2u) {
        return safe_div(g, out[params.d_at]);
    }
    return g;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let base = group * WG * params.per_thread;
    let items = params.write_items != 0u;
    var s = 0.0;
    // A single upstream value serves every element (a reduced call, or a
    // scalar for `none`); otherwise each element has its own.
    var each = false;
    if (GRAD) {
        if (items) {
            s = upstream[0];
            each = arrayLength(&upstream) > 1u;
        } else {
            s = reduced_scale();
        }
    }
    var acc = vec4<f32>(0.0);
    var kinds = 0u;
    for (var k = 0u; k < params.per_thread; k = k + 1u) {
        let i = base + k * WG + lid;
        if (i < params.n) {
            let e = load(i);
            let v = value(e);
            if (items) {
                out[i] = v.x;
            } else {
                // The sums add finite values only; kinds join at the store.
                let part = split_pair(v);
                kinds = kinds | part.kinds;
                acc = acc + vec4(part.v, 0.0, 0.0);
            }
            if (GRAD) {
                var si = s;
                if (each) {
                    si = upstream[i];
                }
                grad[i] = slope(e, si);
            }
        }
    }
    if (!items) {
        let all = reduce_kinds(lid, kinds);
        let r = pair_value(reduce_wg(lid, acc).xy, all);
        if (lid == 0u) {
            let at = 2u * (params.partial_base + group);
            out[at] = r.x;
            out[at + 1u] = r.y;
        }
    }
}

// Elements per thread of the weight pre-pass, as src/gpu/pointwise.rs sizes
// its grid (checked by the test gpu::contract::shared_constants_match_the_shaders).
const ITEMS: u32 = 8u;

// Pre-pass of a weighted mean's gradient: per-workgroup sums of the weight.
@compute @workgroup_size(256)
fn weight_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let base = group * WG * ITEMS;
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = base + k * WG + lid;
        if (i < params.n) {
            acc.x = acc.x + weight[i];
        }
    }
    let r = reduce_wg(lid, acc);
    if (lid == 0u) {
        out[params.partial_base + group] = r.x;
    }
}

// Sums `n` single-float partials of the scratch from `partial_base` into
// out[d_at], times `repeat`: the weight's total for weight_sum's partials, and
// the same for other families' denominators.
@compute @workgroup_size(256)
fn total(@builtin(local_invocation_index) lid: u32) {
    var acc = vec4<f32>(0.0);
    for (var i = lid; i < params.n; i = i + WG) {
        acc.x = acc.x + out[params.partial_base + i];
    }
    let r = reduce_wg(lid, acc);
    if (lid == 0u) {
        out[params.d_at] = r.x * params.repeat;
    }
}
