// smp's DiceLoss in two passes, and its backward in a third. `main`: each
// workgroup sums, per class, the (Σp, Σt, Σ|p − t|, Σ min(p, t)) of its pixels
// into scratch[partial_base + group][class] (vec4). A dispatch covers one
// slice of whole batch entries (inputs may be longer than one binding); all
// slices share the partials.
// `finish` (one workgroup) sums the partials per class over all groups and
// applies smp's per-class rule. Output of `finish`: with `write_items` the C
// per-class losses; otherwise [value], and where the output holds 3 + 3C
// values [value, Σ loss, C, (Σp, Σt, Σ|p − t|) of class 0, of class 1, ...]
// for mergeable partials. With `grad` it also reads the upstream and writes
// each class's coefficients (d/dΣp, d/dΣ|p − t|) to scratch[coef_at + 2c].
// `gradient` (one thread per pixel, one dispatch per slice) reads them back
// and writes d loss / d input: per probability
// (d/dΣp + d/dΣ|p − t| · sign(p − t)) · mask, then through the activation.
//
// Params is `DiceParams` in src/gpu/dice.rs; the test
// gpu::contract::params_match_the_shaders checks that they agree.
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
    // `finish` reads the upstream and writes the coefficients.
    grad: u32,
    coef_at: u32,
}

@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<f32>;
// `finish`: the upstream (one value, or one per class for `none`);
// `gradient`: the scratch, for the coefficients.
@group(0) @binding(2) var<storage, read> side: array<f32>;
// `finish`: the output; `gradient`: d loss / d input.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// `main` and `finish`: partials and coefficients.
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// Pixels per thread of `main`, as src/gpu/dice.rs sizes its grid, and the
// `activation` values of `activation_id` there (checked by the tests
// gpu::contract::shared_constants_match_the_shaders and
// gpu::contract::loss_ids_match_the_shaders).
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
                // The max starts at -FLT_MAX, not -inf: a row of -inf logits
                // still gives 0 / 0.
                var m = -FLT_MAX;
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
            scratch[j] = r.x;
            scratch[j + 1u] = r.y;
            scratch[j + 2u] = r.z;
            scratch[j + 3u] = r.w;
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

// The backward of `class_loss` for upstream g, as autograd runs through
// smp's expression: (d/dΣp, d/dΣ|p − t|). A clamp passes a gradient where its
// argument is at or above eps (PyTorch's clamp_min); an absent class gets 0.
// Where the cardinality's clamp is inactive, d/dΣp = g_dice · (1 − dice) /
// (2 card), with 1 − dice = (D / 2) / card as in the forward.
fn class_coef(sp: f32, st: f32, d: f32, i: f32, g: f32) -> vec2<f32> {
    let smoothing = params.smoothing;
    let eps = params.eps;
    let gl = g * select(0.0, 1.0, st > 0.0);
    let raw = 0.5 * (sp + st) + smoothing;
    if (raw >= eps) {
        let miss = 0.5 * d / raw;
        var gdice = -gl;
        if (params.log_loss != 0u) {
            let dice = select(1.0 - miss, (i + smoothing) / raw, miss > 0.5);
            gdice = select(0.0, -gl / dice, dice >= eps);
        }
        return vec2(0.5 * gdice * miss / raw, -0.5 * gdice / raw);
    }
    // Only the numerator passes a gradient (NaN sums stay NaN).
    let card = clamp_min(raw, eps);
    let dice = ((sp + st - d) * 0.5 + smoothing) / card;
    var gdice = -gl;
    if (params.log_loss != 0u) {
        gdice = select(0.0, -gl / dice, dice >= eps);
    }
    let gnum = gdice / card;
    return vec2(0.5 * gnum, -0.5 * gnum);
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
            acc = acc + vec4(scratch[j], scratch[j + 1u], scratch[j + 2u], scratch[j + 3u]);
        }
        let r = reduce_wg(lid, acc);
        if (lid == 0u) {
            let l = class_loss(r.x, r.y, r.z, r.w);
            total = total + l;
            if (params.grad != 0u) {
                // One upstream per class for `none` (or one for all of them).
                var g = side[0];
                if (params.write_items != 0u && arrayLength(&side) > 1u) {
                    g = side[c];
                }
                if (params.mean != 0u) {
                    g = g / f32(classes);
                }
                let co = class_coef(r.x, r.y, r.z, r.w, g);
                scratch[params.coef_at + 2u * c] = co.x;
                scratch[params.coef_at + 2u * c + 1u] = co.y;
            }
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

// d loss / d probability of class c: p and t masked, sign(0) = 0 (and, as in
// the twin, 0 for NaN: NaN sums make the coefficients NaN anyway).
fn grad_prob(c: u32, p: f32, t: f32, m: f32) -> f32 {
    let a = side[params.coef_at + 2u * c];
    let b = side[params.coef_at + 2u * c + 1u];
    let v = p * m - t;
    let s = select(0.0, 1.0, v > 0.0) - select(0.0, 1.0, v < 0.0);
    return (a + b * s) * m;
}

@compute @workgroup_size(256)
fn gradient(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let q = (wid.x + wid.y * params.groups_x) * WG + lid;
    if (q >= params.pixels) {
        return;
    }
    let classes = params.classes;
    let inner = params.inner;
    let n = q / inner;
    let first = params.skip + n * classes * inner + (q - n * inner);
    var y = -1;
    var m = 1.0;
    if (params.class_target != 0u) {
        y = bitcast<i32>(targets[params.target_skip + q]);
        let keep = params.has_ignore == 0u || y != params.ignore_class;
        m = select(0.0, 1.0, keep);
        if (keep && (y < 0 || y >= i32(classes))) {
            // As in the forward: a bad class index gives NaN, never a number.
            for (var c = 0u; c < classes; c = c + 1u) {
                out[first + c * inner] = nan();
            }
            return;
        }
        if (!keep) {
            y = -1;
        }
    }
    if (params.activation == SOFTMAX) {
        // p = softmax(x), as in `main`; d/dx_k = p_k (g_k − Σ_j g_j p_j). The
        // sum over j is taken with the normaliser in one walk: for j ≠ y the
        // sign of p_j − 0 is that of e_j (a p_j that rounds to 0 weighs
        // nothing either way); the target class's sign needs p_y itself.
        var mx = -FLT_MAX;
        for (var c = 0u; c < classes; c = c + 1u) {
            mx = max(mx, input[first + c * inner]);
        }
        var s = 0.0;
        var dot = 0.0;
        for (var c = 0u; c < classes; c = c + 1u) {
            let e = exp(input[first + c * inner] - mx);
            s = s + e;
            if (i32(c) != y) {
                dot = dot + grad_prob(c, e, 0.0, m) * e;
            }
        }
        dot = dot / s;
        if (y >= 0) {
            let p = exp(input[first + u32(y) * inner] - mx) / s;
            dot = dot + grad_prob(u32(y), p, 1.0, m) * p;
        }
        for (var c = 0u; c < classes; c = c + 1u) {
            let i = first + c * inner;
            let p = exp(input[i] - mx) / s;
            let t = select(0.0, 1.0, i32(c) == y);
            out[i] = p * (grad_prob(c, p, t, m) - dot);
        }
        return;
    }
    for (var c = 0u; c < classes; c = c + 1u) {
        let i = first + c * inner;
        let x = input[i];
        var t: f32;
        var mc = m;
        if (params.class_target != 0u) {
            t = select(0.0, 1.0, i32(c) == y);
        } else {
            t = targets[i];
            mc = select(0.0, 1.0, params.has_ignore == 0u || t != params.ignore);
            t = t * mc;
        }
        if (params.activation == SIGMOID) {
            // p = exp(logsigmoid(x)): dp/dx = p σ(−x).
            let p = sigmoid(x);
            out[i] = grad_prob(c, p, t, mc) * p * sigmoid(-x);
        } else {
            out[i] = grad_prob(c, x, t, mc);
        }
    }
}
