// smp's DiceLoss in two passes. `main`: each workgroup sums, per class, the
// (Σp, Σt, Σ|p − t|) of its pixels into partials[partial_base + group][class]
// (vec4). A dispatch covers one slice of whole batch entries (inputs may be
// longer than one binding); all slices share the partials.
// `finish` (one workgroup; binding 0 = the partials, binding 1 unused) sums
// the partials per class over all groups and applies smp's per-class rule.
// Output of `finish`: with `write_items` the C per-class losses; otherwise
// [value], and where the output holds 3 + 3C values [value, Σ loss, C,
// (Σp, Σt, Σ|p − t|) of class 0, of class 1, ...] for mergeable partials.
//
// Params must be kept in sync with `DiceParams` in src/gpu/dice.rs.
struct Params {
    // Pixels of this slice: entries * inner (dims 0 and 2 of (N, C, inner)).
    pixels: u32,
    classes: u32,
    inner: u32,
    groups_x: u32,
    // Number of partial groups (`finish`).
    groups: u32,
    // Targets are i32 class indices of shape (N, inner); otherwise floats of
    // the input's shape.
    class_target: u32,
    // 0: input is probabilities; 1: sigmoid; 2: softmax over the classes.
    activation: u32,
    // Targets equal to `ignore` (floats) or `ignore_class` (class indices)
    // are masked out.
    has_ignore: u32,
    ignore: f32,
    ignore_class: i32,
    smoothing: f32,
    eps: f32,
    log_loss: u32,
    // 1: value = mean over classes; else the sum.
    mean: u32,
    write_items: u32,
    // Values bound before the slice's first entry: bindings start 256-byte
    // aligned, slices need not. Float targets share the input's layout and skip.
    skip: u32,
    target_skip: u32,
    partial_base: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> params: Params;

const ITEMS: u32 = 8u;
const SIGMOID: u32 = 1u;
const SOFTMAX: u32 = 2u;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let base = group * WG * ITEMS;
    let classes = params.classes;
    let inner = params.inner;
    // Each of this thread's pixels: the index of its class 0 (one integer
    // division, not one per class), and its softmax statistics, computed once
    // for all classes.
    var first: array<u32, ITEMS>;
    var row_max: array<f32, ITEMS>;
    var row_sum: array<f32, ITEMS>;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let q = base + k * WG + lid;
        if (q < params.pixels) {
            let n = q / inner;
            first[k] = params.skip + n * classes * inner + (q - n * inner);
            if (params.activation == SOFTMAX) {
                // NaN or infinite logits make the sum NaN, as in the reference.
                var m = -inf();
                for (var c = 0u; c < classes; c = c + 1u) {
                    m = max(m, input[first[k] + c * inner]);
                }
                var s = 0.0;
                for (var c = 0u; c < classes; c = c + 1u) {
                    s = s + exp(input[first[k] + c * inner] - m);
                }
                row_max[k] = m;
                row_sum[k] = s;
            }
        }
    }
    for (var c = 0u; c < classes; c = c + 1u) {
        var acc = vec4<f32>(0.0);
        for (var k = 0u; k < ITEMS; k = k + 1u) {
            let q = base + k * WG + lid;
            if (q < params.pixels) {
                let i = first[k] + c * inner;
                let x = input[i];
                var p = x;
                if (params.activation == SIGMOID) {
                    p = sigmoid(x);
                } else if (params.activation == SOFTMAX) {
                    p = exp(x - row_max[k]) / row_sum[k];
                }
                var t: f32;
                var keep: bool;
                if (params.class_target != 0u) {
                    let y = bitcast<i32>(targets[params.target_skip + q]);
                    keep = params.has_ignore == 0u || y != params.ignore_class;
                    t = select(0.0, 1.0, y == i32(c));
                    // The host never sends a class out of range; device
                    // buffers may. Its one-hot row is undefined: NaN in every
                    // class, never a plausible loss.
                    if (keep && (y < 0 || y >= i32(classes))) {
                        t = nan();
                    }
                } else {
                    t = targets[i];
                    keep = params.has_ignore == 0u || t != params.ignore;
                }
                // smp multiplies by the mask, so a NaN prediction stays NaN.
                let w = select(0.0, 1.0, keep);
                p = p * w;
                t = t * w;
                // min(p, t) = (p + t - |p - t|) / 2 per pixel: the intersection
                // without the cancellation of (Sp + St - D) / 2 when it is tiny.
                let both = select(min(p, t), nan(), is_nan(p) || is_nan(t));
                acc = acc + vec4(p, t, abs(p - t), both);
            }
        }
        let r = reduce_wg(lid, acc);
        if (lid == 0u) {
            let j = 4u * ((params.partial_base + group) * classes + c);
            out[j] = r.x;
            out[j + 1u] = r.y;
            out[j + 2u] = r.z;
            out[j + 3u] = r.w;
        }
    }
}

// smp's rule: I = (Sp + St − D) / 2, dice = (I + smooth) / clamp_min(Sp/2 +
// St/2 + smooth, eps); 0 for a class absent from the whole batch (NaN stays NaN).
// Where the clamp is inactive, 1 − dice = (D / 2) / cardinality exactly,
// which avoids the cancellation of 1 − dice for good predictions; a log loss
// of a poor one takes dice from the intersection I = Σ min(p, t) instead.
fn class_loss(sp: f32, st: f32, d: f32, i: f32) -> f32 {
    let smoothing = params.smoothing;
    let eps = params.eps;
    let card = 0.5 * (sp + st) + smoothing;
    var l: f32;
    if (card >= eps) {
        let miss = 0.5 * d / card;
        if (params.log_loss == 0u) {
            l = miss;
        } else if (miss > 0.5) {
            l = -ln(clamp_min((i + smoothing) / card, eps));
        } else {
            l = -log1p(-miss);
        }
    } else {
        let dice = ((sp + st - d) * 0.5 + smoothing) / eps;
        if (params.log_loss == 0u) {
            l = 1.0 - dice;
        } else {
            l = -ln(clamp_min(dice, eps));
        }
    }
    return l * select(0.0, 1.0, st > 0.0);
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
    let classes = params.classes;
    let sums = arrayLength(&out) >= 3u + 3u * classes;
    var total = 0.0;
    for (var c = 0u; c < classes; c = c + 1u) {
        var acc = vec4<f32>(0.0);
        for (var g = lid; g < params.groups; g = g + WG) {
            let j = 4u * (g * classes + c);
            acc = acc + vec4(input[j], input[j + 1u], input[j + 2u], input[j + 3u]);
        }
        let r = reduce_wg(lid, acc);
        if (lid == 0u) {
            let l = class_loss(r.x, r.y, r.z, r.w);
            total = total + l;
            if (params.write_items != 0u) {
                out[c] = l;
            } else if (sums) {
                let j = 3u + 3u * c;
                out[j] = r.x;
                out[j + 1u] = r.y;
                out[j + 2u] = r.z;
            }
        }
    }
    if (lid == 0u && params.write_items == 0u) {
        out[0] = select(total, safe_div(total, f32(classes)), params.mean != 0u);
        if (sums) {
            out[1] = total;
            out[2] = f32(classes);
        }
    }
}
