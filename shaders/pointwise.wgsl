// Elementwise losses, each fused with its reduction: one pass maps every
// element and sums (loss, denominator) per workgroup; finalize.wgsl combines
// the partials. With `write_items` set it writes the per-element losses instead.
// A dispatch covers one slice of the input (inputs may be longer than one
// binding): `base` is the slice's first element in the whole tensor.
//
// Params must be kept in sync with `PointParams` in src/gpu/pointwise.rs.
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
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> aux: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// Loss ids: must match `PointLoss` in src/gpu/pointwise.rs.
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

const ITEMS: u32 = 8u;

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
// appears.
fn bce(x: f32, y: f32) -> f32 {
    let lx = clamp_min(ln(x), -100.0);
    let l1x = clamp_min(log1p(-x), -100.0);
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
    if (x == -inf()) {
        return nan();
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

// Returns (loss, denominator contribution) of the slice's element i.
fn item(i: u32) -> vec2<f32> {
    let x = input[i];
    let y = targets[i / params.per_target];
    let g = params.base + i;
    var w = 1.0;
    if (params.w_sliced != 0u) {
        w = weight[i];
    } else if (params.w_len != 0u) {
        w = weight[(g / params.w_inner) % params.w_len];
    }
    var a = params.p0;
    if (params.a_sliced != 0u) {
        a = aux[i];
    } else if (params.a_len != 0u) {
        a = aux[(g / params.a_inner) % params.a_len];
    }
    switch LOSS {
        case MSE: { return vec2(w * mse(x, y), w); }
        case L1: { return vec2(w * l1(x, y), w); }
        case HUBER: { return vec2(w * huber(x, y, params.p0), 1.0); }
        case SMOOTH_L1: { return vec2(smooth_l1(x, y, params.p0), 1.0); }
        case LOG_COSH: { return vec2(log_cosh(x, y), 1.0); }
        case QUANTILE: { return vec2(quantile(x, y, a), 1.0); }
        case BCE: { return vec2(w * bce(x, y), 1.0); }
        case BCE_WITH_LOGITS: {
            var pw = 1.0;
            if (params.a_len != 0u) { pw = a; }
            return vec2(w * bce_with_logits(x, y, pw), 1.0);
        }
        case SIGMOID_FOCAL: { return vec2(sigmoid_focal(x, y, params.p0, params.p1), 1.0); }
        case KL_DIV: { return vec2(kl_div(x, y, params.p0 != 0.0), 1.0); }
        default: { return vec2(nan(), 1.0); }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let base = group * WG * ITEMS;
    var acc = vec4<f32>(0.0);
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = base + k * WG + lid;
        if (i < params.n) {
            let v = item(i);
            if (params.write_items != 0u) {
                out[i] = v.x;
            } else {
                acc = acc + vec4(v, 0.0, 0.0);
            }
        }
    }
    if (params.write_items == 0u) {
        let r = reduce_wg(lid, acc);
        if (lid == 0u) {
            let at = 2u * (params.partial_base + group);
            out[at] = r.x;
            out[at + 1u] = r.y;
        }
    }
}
