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
    // Pixels per invocation of `pixels` and `pixels_gradient`.
    per_thread: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// Input and float targets as words of their dtype (`element`, common.wgsl),
// which the `DTYPE_<binding>` override of each names; class targets as i32.
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
// `finish`: the upstream (one value, or one per class for `none`);
// `gradient`: the scratch, for the coefficients.
@group(0) @binding(2) var<storage, read> side: array<f32>;
// `finish`: the output; `gradient`: d loss / d input.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// `main` and `finish`: partials and coefficients.
@group(0) @binding(4) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

override DTYPE_0: u32 = DT_F32;
override DTYPE_1: u32 = DT_F32;

fn ld_input(i: u32) -> f32 { return element(input[word_of(i, DTYPE_0)], i, DTYPE_0); }
fn ld_target(i: u32) -> f32 { return element(targets[word_of(i, DTYPE_1)], i, DTYPE_1); }

// Pixels per thread of `main`, as src/gpu/dice.rs sizes its grid, and the
// `activation` values of `activation_id` there (checked by the tests
// gpu::contract::shared_constants_match_the_shaders and
// gpu::contract::loss_ids_match_the_shaders).
const ITEMS: u32 = 8u;
const TEAM: u32 = 32u;
const SIGMOID: u32 = 1u;
const SOFTMAX: u32 = 2u;

// The kinds of the four sums of a (pixel, class) term, 4 bits each.
fn term_kinds(p: Ext, t: Ext, d: Ext, both: Ext) -> u32 {
    return kind_flag(p.k) | (kind_flag(t.k) << 4u) | (kind_flag(d.k) << 8u) | (kind_flag(both.k) << 12u);
}

// The four sums of a class, each with its kinds.
struct Sums {
    sp: Ext,
    st: Ext,
    d: Ext,
    i: Ext,
}

fn sums_of(r: Reduced) -> Sums {
    return Sums(
        with_kinds(r.v.x, r.kinds & 15u),
        with_kinds(r.v.y, (r.kinds >> 4u) & 15u),
        with_kinds(r.v.z, (r.kinds >> 8u) & 15u),
        with_kinds(r.v.w, (r.kinds >> 12u) & 15u),
    );
}

// Class c's sums of the workgroup from every invocation's `acc` and `kinds`,
// stored as its partial. Call n of a loop over classes (reduce_wg_kinds's
// slots), from uniform control flow.
fn class_partial(lid: u32, group: u32, c: u32, acc: vec4<f32>, kinds: u32) {
    let r = sums_of(reduce_wg_kinds(lid, acc, kinds, c));
    if (lid == 0u) {
        let j = 4u * ((params.partial_base + group) * params.classes + c);
        scratch[j] = ext_f32(r.sp);
        scratch[j + 1u] = ext_f32(r.st);
        scratch[j + 2u] = ext_f32(r.d);
        scratch[j + 3u] = ext_f32(r.i);
    }
}

// A pixel's softmax statistics over the finite logits: the largest and the
// sum of exp(x_c - max). A NaN or +inf logit makes every probability of the
// pixel NaN (the reference's max is then inf or NaN, and its sum NaN), and so
// does a row of -inf logits (0 / 0); a -inf logit's probability is 0.
struct Softmax {
    m: f32,
    s: f32,
    nan: bool,
}

fn softmax_of(first: u32) -> Softmax {
    var m = -FLT_MAX;
    var nan = false;
    for (var c = 0u; c < params.classes; c = c + 1u) {
        let x = ext(ld_input(first + c * params.inner));
        if (x.k == K_NAN || x.k == K_PINF) {
            nan = true;
        } else if (x.k == K_FIN) {
            m = max(m, x.v);
        }
    }
    var s = 0.0;
    for (var c = 0u; c < params.classes; c = c + 1u) {
        let x = ld_input(first + c * params.inner);
        if (is_fin(x)) {
            s = s + exp(x - m);
        }
    }
    return Softmax(m, s, nan || s == 0.0);
}

// The probability exp(x - m) / s of a logit x.
fn softmax_p(x: f32, st: Softmax) -> Ext {
    if (st.nan) {
        return ext_kind(K_NAN);
    }
    if (!is_fin(x)) {
        return fin(0.0);
    }
    return fin(exp(x - st.m) / st.s);
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    // A run of TEAM * ITEMS pixels for each team of TEAM neighbouring
    // invocations, its lanes side by side: one 128-byte line of a class per
    // step (as pointwise.wgsl walks its elements, and for the same reasons).
    let start = (group * WG + lid) / TEAM * TEAM * ITEMS + lid % TEAM;
    let classes = params.classes;
    let inner = params.inner;
    // Each of this thread's pixels: the index of its class 0 (one integer
    // division, not one per class), and its softmax statistics, computed once
    // for all classes.
    var first: array<u32, ITEMS>;
    var stats: array<Softmax, ITEMS>;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let q = start + k * TEAM;
        if (q < params.pixels) {
            let n = q / inner;
            first[k] = params.skip + n * classes * inner + (q - n * inner);
            if (params.activation == SOFTMAX) {
                stats[k] = softmax_of(first[k]);
            }
        }
    }
    for (var c = 0u; c < classes; c = c + 1u) {
        var acc = vec4<f32>(0.0);
        var kinds = 0u;
        for (var k = 0u; k < ITEMS; k = k + 1u) {
            let q = start + k * TEAM;
            if (q < params.pixels) {
                let i = first[k] + c * inner;
                let x = ld_input(i);
                var p = ext(x);
                if (params.activation == SIGMOID) {
                    p = ext_sigmoid(p);
                } else if (params.activation == SOFTMAX) {
                    p = softmax_p(x, stats[k]);
                }
                var t: Ext;
                var keep: bool;
                if (params.class_target != 0u) {
                    // The host never sends a class out of range; device
                    // buffers may. Its one-hot row is undefined: NaN in every
                    // class, never a plausible loss.
                    let ct = class_target_of(q, classes);
                    keep = ct.keep;
                    t = ext_pick(fin(select(0.0, 1.0, ct.y == i32(c))), ext_kind(K_NAN), ct.bad);
                } else {
                    let raw = ld_target(i);
                    keep = params.has_ignore == 0u || raw != params.ignore;
                    t = ext(raw);
                }
                // smp multiplies by the mask, so a NaN prediction stays NaN
                // (and an infinite one becomes NaN).
                let w = fin(select(0.0, 1.0, keep));
                p = ext_mul(p, w);
                t = ext_mul(t, w);
                // min(p, t) = (p + t - |p - t|) / 2 per pixel: the intersection
                // without the cancellation of (Sp + St - D) / 2 when it is tiny.
                let d = ext_abs(ext_sub(p, t));
                let both = ext_min(p, t);
                // The sums add finite parts only; kinds join at the store.
                kinds = kinds | term_kinds(p, t, d, both);
                acc = acc + vec4(p.v, t.v, d.v, both.v);
            }
        }
        class_partial(lid, group, c, acc, kinds);
    }
}

// `dice-coalesced`: `main`'s partials from one pass over the slice's values
// in memory order, in a grid-stride loop, so that neighbouring invocations
// read neighbouring values whatever the layout (`main` reads a pixel's classes
// `inner` apart, which for inner = 1 are a stride of C between neighbouring
// invocations). Each value adds to its class's sums, which each invocation
// keeps for up to COALESCED_CLASSES classes; one reduction per class then
// gives the workgroup's partial. Sigmoid and plain probabilities only: a
// softmax needs every class of a pixel at once (src/gpu/dice.rs offers this
// variant only there).
const COALESCED_CLASSES: u32 = 16u;

@compute @workgroup_size(256)
fn coalesced(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = wid.x + wid.y * params.groups_x;
    let stride = groups.x * groups.y * WG;
    let classes = params.classes;
    let inner = params.inner;
    let values = params.pixels * classes;
    var acc: array<vec4<f32>, COALESCED_CLASSES>;
    var kinds: array<u32, COALESCED_CLASSES>;
    for (var c = 0u; c < COALESCED_CLASSES; c = c + 1u) {
        acc[c] = vec4<f32>(0.0);
        kinds[c] = 0u;
    }
    for (var e = group * WG + lid; e < values; e = e + stride) {
        // e = (n * classes + c) * inner + r: entry n, class c, pixel r of the entry.
        let row = e / inner;
        let c = row % classes;
        let q = (row / classes) * inner + (e - row * inner);
        let i = params.skip + e;
        var p = ext(ld_input(i));
        if (params.activation == SIGMOID) {
            p = ext_sigmoid(p);
        }
        var t: Ext;
        var keep: bool;
        if (params.class_target != 0u) {
            let ct = class_target_of(q, classes);
            keep = ct.keep;
            t = ext_pick(fin(select(0.0, 1.0, ct.y == i32(c))), ext_kind(K_NAN), ct.bad);
        } else {
            let raw = ld_target(i);
            keep = params.has_ignore == 0u || raw != params.ignore;
            t = ext(raw);
        }
        // As in `main`.
        let w = fin(select(0.0, 1.0, keep));
        p = ext_mul(p, w);
        t = ext_mul(t, w);
        let d = ext_abs(ext_sub(p, t));
        let both = ext_min(p, t);
        kinds[c] = kinds[c] | term_kinds(p, t, d, both);
        acc[c] = acc[c] + vec4(p.v, t.v, d.v, both.v);
    }
    for (var c = 0u; c < classes; c = c + 1u) {
        class_partial(lid, group, c, acc[c], kinds[c]);
    }
}

// `dice-pixels`: a run of `per_thread` pixels per invocation, laid out as
// `main`'s (teams of TEAM, one 128-byte line of a class per step), each
// pixel's classes loaded once into registers: the softmax, the target and
// the four sums of every class come from them, and the sums stay per class
// in registers until one reduction per class ends the workgroup. CLASSES is
// the class count as a pipeline constant (at most PIXEL_CLASSES), so that
// the loops over classes unroll and the per-class arrays stay registers.
override CLASSES: u32 = 1u;
const PIXEL_CLASSES: u32 = 16u;
// `params.activation` and `params.class_target` as pipeline constants, so
// that `dice-pixels` compiles only the path it runs: a CPU adapter runs both
// sides of a branch it cannot prove uniform.
override ACTIVATION: u32 = 0u;
override CLASS_TARGET: bool = false;
// A softmax against class indices (smp's multiclass from logits): every
// probability lies in [0, 1] and every target is 0 or 1, unless the pixel is
// NaN throughout (a poisoned softmax, a bad class index). Its sums then need
// no extended reals: plain f32 terms and one kind per pixel.
// The kinds `term_kinds` gives a NaN p (so NaN d and min(p, t)), and a NaN t.
const NAN_FLAG: u32 = 1u << K_NAN;
const BOUNDED_NAN_P: u32 = NAN_FLAG | (NAN_FLAG << 8u) | (NAN_FLAG << 12u);
const BOUNDED_NAN_T: u32 = (NAN_FLAG << 4u) | (NAN_FLAG << 8u) | (NAN_FLAG << 12u);

// The input index of a pixel's class 0, kept as (entry n, pixel r of the
// entry) and stepped by TEAM pixels without a division: a loop, not a
// branch, carries r into n, because a CPU adapter runs a branch's body for
// every step, a loop's only while one of its lanes needs it (once for
// inner >= TEAM, up to TEAM / inner times below).
struct Walk {
    n: u32,
    r: u32,
}

fn walk_from(q: u32) -> Walk {
    let n = q / params.inner;
    return Walk(n, q - n * params.inner);
}

fn walk_step(w: Walk) -> Walk {
    var r = w.r + TEAM;
    var n = w.n;
    while (r >= params.inner) {
        r = r - params.inner;
        n = n + 1u;
    }
    return Walk(n, r);
}

fn walk_first(w: Walk) -> u32 {
    return params.skip + w.n * CLASSES * params.inner + w.r;
}

// The probabilities of a pixel's classes from its values x: plain, sigmoid or
// softmax (as `softmax_of` and `softmax_p`: NaN for every class after a NaN or
// +inf logit or with no finite one, 0 for a -inf logit).
fn pixel_probs(x: array<f32, PIXEL_CLASSES>) -> array<Ext, PIXEL_CLASSES> {
    var p: array<Ext, PIXEL_CLASSES>;
    if (ACTIVATION == SOFTMAX) {
        var m = -FLT_MAX;
        var bad = false;
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            let k = kind_of(x[c]);
            bad = bad || k == K_NAN || k == K_PINF;
            m = select(m, max(m, x[c]), k == K_FIN);
        }
        var e: array<f32, PIXEL_CLASSES>;
        var s = 0.0;
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            let f = is_fin(x[c]);
            e[c] = select(0.0, exp(select(m, x[c], f) - m), f);
            s = s + e[c];
        }
        bad = bad || s == 0.0;
        let d = select(s, 1.0, bad);
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            p[c] = ext_pick(fin(e[c] / d), ext_kind(K_NAN), bad);
        }
    } else {
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            p[c] = ext(x[c]);
            if (ACTIVATION == SIGMOID) {
                p[c] = ext_sigmoid(p[c]);
            }
        }
    }
    return p;
}

// e · 0 for a masked-out value (NaN for a non-finite e, as smp's product), e
// where kept.
fn keep_or_zero(e: Ext, keep: bool) -> Ext {
    return ext_pick(ext_pick(fin(0.0), ext_kind(K_NAN), e.k != K_FIN), e, keep);
}

// A pixel's class target: its index, whether it counts, and whether it is
// an index out of [0, classes) that counts (NaN for its pixel).
struct ClassTarget {
    y: i32,
    keep: bool,
    bad: bool,
}

fn class_target_of(q: u32, classes: u32) -> ClassTarget {
    let y = bitcast<i32>(targets[params.target_skip + q]);
    let keep = params.has_ignore == 0u || y != params.ignore_class;
    return ClassTarget(y, keep, keep && (y < 0 || y >= i32(classes)));
}

// Pixels per block of `pixels`: each block's sums are taken apart and then
// added to the invocation's, so that a run of up to 512 pixels (the host's
// MAX_PIXELS, on a CPU adapter) rounds as PIXEL_BLOCK + 8 additions.
const PIXEL_BLOCK: u32 = 64u;

// A pixel's terms added to its classes' sums and kinds.
fn add_pixel(
    q: u32,
    first: u32,
    acc: ptr<function, array<vec4<f32>, PIXEL_CLASSES>>,
    kinds: ptr<function, array<u32, PIXEL_CLASSES>>,
) {
    var x: array<f32, PIXEL_CLASSES>;
    for (var c = 0u; c < CLASSES; c = c + 1u) {
        x[c] = ld_input(first + c * params.inner);
    }
    let probs = pixel_probs(x);
    var ct = ClassTarget(-1, true, false);
    if (CLASS_TARGET) {
        ct = class_target_of(q, CLASSES);
    }
    if (CLASS_TARGET && ACTIVATION == SOFTMAX) {
        let nan_p = probs[0].k == K_NAN;
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            let p = select(0.0, probs[c].v, ct.keep);
            let t = select(0.0, 1.0, ct.keep && ct.y == i32(c));
            (*acc)[c] = (*acc)[c] + vec4(p, t, abs(p - t), min(p, t));
            (*kinds)[c] = (*kinds)[c] | select(0u, BOUNDED_NAN_P, nan_p) | select(0u, BOUNDED_NAN_T, ct.bad);
        }
        return;
    }
    for (var c = 0u; c < CLASSES; c = c + 1u) {
        var t: Ext;
        var keep = ct.keep;
        if (CLASS_TARGET) {
            t = ext_pick(fin(select(0.0, 1.0, ct.y == i32(c))), ext_kind(K_NAN), ct.bad);
        } else {
            let raw = ld_target(first + c * params.inner);
            keep = params.has_ignore == 0u || raw != params.ignore;
            t = ext(raw);
        }
        // As in `main`.
        let p = keep_or_zero(probs[c], keep);
        t = keep_or_zero(t, keep);
        let d = ext_abs(ext_sub(p, t));
        let both = ext_min(p, t);
        (*kinds)[c] = (*kinds)[c] | term_kinds(p, t, d, both);
        (*acc)[c] = (*acc)[c] + vec4(p.v, t.v, d.v, both.v);
    }
}

@compute @workgroup_size(256)
fn pixels(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let per = params.per_thread;
    let start = (group * WG + lid) / TEAM * TEAM * per + lid % TEAM;
    var acc: array<vec4<f32>, PIXEL_CLASSES>;
    var kinds: array<u32, PIXEL_CLASSES>;
    var w = walk_from(start);
    for (var b = 0u; b < per; b = b + PIXEL_BLOCK) {
        var part: array<vec4<f32>, PIXEL_CLASSES>;
        let end = min(b + PIXEL_BLOCK, per);
        for (var k = b; k < end; k = k + 1u) {
            let q = start + k * TEAM;
            if (q >= params.pixels) {
                break;
            }
            add_pixel(q, walk_first(w), &part, &kinds);
            w = walk_step(w);
        }
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            acc[c] = acc[c] + part[c];
        }
    }
    for (var c = 0u; c < CLASSES; c = c + 1u) {
        // acc[c] and kinds[c] through constant indices: a loop with a
        // barrier in it may stay a loop, and indexing the arrays with its
        // counter would keep them in memory for the whole kernel.
        var v = vec4<f32>(0.0);
        var kc = 0u;
        for (var j = 0u; j < CLASSES; j = j + 1u) {
            v = select(v, acc[j], j == c);
            kc = select(kc, kinds[j], j == c);
        }
        class_partial(lid, group, c, v, kc);
    }
}

// smp's rule: I = (Sp + St − D) / 2, dice = (I + smooth) / clamp_min(Sp/2 +
// St/2 + smooth, eps); 0 for a class absent from the whole batch (NaN stays NaN).
// Where the clamp is inactive, 1 − dice = (D / 2) / cardinality exactly,
// which avoids the cancellation of 1 − dice for good predictions; a log loss
// of a poor one takes dice from the intersection I = Σ min(p, t) instead.
// The sums may hold infinities and NaN as kinds: the rule runs on `Ext`.
fn class_loss(r: Sums) -> Ext {
    let smoothing = fin(params.smoothing);
    let eps = params.eps;
    let card = ext_add(ext_mul(fin(0.5), ext_add(r.sp, r.st)), smoothing);
    var l: Ext;
    if (ext_le(fin(eps), card)) {
        let miss = ext_div(ext_mul(fin(0.5), r.d), card);
        if (params.log_loss == 0u) {
            l = miss;
        } else if (ext_lt(fin(0.5), miss)) {
            l = ext_neg(ext_ln(ext_clamp_min(ext_div(ext_add(r.i, smoothing), card), eps)));
        } else {
            l = ext_neg(ext_log1p(ext_neg(miss)));
        }
    } else {
        let dice = ext_div(ext_add(ext_mul(ext_sub(ext_add(r.sp, r.st), r.d), fin(0.5)), smoothing), fin(eps));
        if (params.log_loss == 0u) {
            l = ext_sub(fin(1.0), dice);
        } else {
            l = ext_neg(ext_ln(ext_clamp_min(dice, eps)));
        }
    }
    return ext_mul(l, present(r.st));
}

// 1 for a class present in the batch (Σt > 0), else 0; a finite sum is
// read from its bits, so that a subnormal one counts as present also where
// hardware flushes subnormals to zero.
fn present(st: Ext) -> Ext {
    let positive = st.k == K_PINF || (st.k == K_FIN && !sign_bit(st.v) && !is_zero(st.v));
    return fin(select(0.0, 1.0, positive));
}

// d/dΣp and d/dΣ|p − t| of a class.
struct Coef {
    a: Ext,
    b: Ext,
}

// The backward of `class_loss` for upstream g, as autograd runs through
// smp's expression. A clamp passes a gradient where its argument is at or
// above eps (PyTorch's clamp_min); an absent class gets 0. Where the
// cardinality's clamp is inactive, d/dΣp = g_dice · (1 − dice) / (2 card),
// with 1 − dice = (D / 2) / card as in the forward.
fn class_coef(r: Sums, g: Ext) -> Coef {
    let smoothing = fin(params.smoothing);
    let eps = params.eps;
    let gl = ext_mul(g, present(r.st));
    let raw = ext_add(ext_mul(fin(0.5), ext_add(r.sp, r.st)), smoothing);
    if (ext_le(fin(eps), raw)) {
        let miss = ext_div(ext_mul(fin(0.5), r.d), raw);
        var gdice = ext_neg(gl);
        if (params.log_loss != 0u) {
            var dice = ext_sub(fin(1.0), miss);
            if (ext_lt(fin(0.5), miss)) {
                dice = ext_div(ext_add(r.i, smoothing), raw);
            }
            gdice = fin(0.0);
            if (ext_le(fin(eps), dice)) {
                gdice = ext_div(ext_neg(gl), dice);
            }
        }
        let half = ext_mul(fin(0.5), gdice);
        return Coef(ext_div(ext_mul(half, miss), raw), ext_div(ext_neg(half), raw));
    }
    // Only the numerator passes a gradient (NaN sums stay NaN).
    let card = ext_clamp_min(raw, eps);
    let dice = ext_div(ext_add(ext_mul(ext_sub(ext_add(r.sp, r.st), r.d), fin(0.5)), smoothing), card);
    var gdice = ext_neg(gl);
    if (params.log_loss != 0u) {
        gdice = fin(0.0);
        if (ext_le(fin(eps), dice)) {
            gdice = ext_div(ext_neg(gl), dice);
        }
    }
    let gnum = ext_div(gdice, card);
    return Coef(ext_mul(fin(0.5), gnum), ext_mul(fin(-0.5), gnum));
}

// Whether every sum of a class is finite. If one is not, smp's own
// expression (the twin's `dice` and `dice_grad`) decides, on extended reals:
// its terms meet inf - inf and give NaN where the rearranged rule above,
// algebraically the same, would give an infinity.
fn finite_sums(r: Sums) -> bool {
    return r.sp.k == K_FIN && r.st.k == K_FIN && r.d.k == K_FIN && r.i.k == K_FIN;
}

// smp's terms: the intersection (Sp + St - D) / 2, the cardinality before
// its clamp, inter + fp / 2 + fn / 2 + smooth, and the score.
struct Terms {
    inter: Ext,
    raw: Ext,
    card: Ext,
    score: Ext,
}

fn smp_terms(r: Sums) -> Terms {
    let smoothing = fin(params.smoothing);
    let inter = ext_mul(ext_sub(ext_add(r.sp, r.st), r.d), fin(0.5));
    let fp = ext_sub(r.sp, inter);
    let fneg = ext_sub(r.st, inter);
    let raw = ext_add(ext_add(ext_add(inter, ext_mul(fin(0.5), fp)), ext_mul(fin(0.5), fneg)), smoothing);
    let card = ext_clamp_min(raw, params.eps);
    return Terms(inter, raw, card, ext_div(ext_add(inter, smoothing), card));
}

fn class_loss_ref(r: Sums) -> Ext {
    let t = smp_terms(r);
    var l = ext_sub(fin(1.0), t.score);
    if (params.log_loss != 0u) {
        l = ext_neg(ext_ln(ext_clamp_min(t.score, params.eps)));
    }
    return ext_mul(l, present(r.st));
}

// autograd through smp's terms: the score's gradient reaches the
// intersection through the numerator and, where the clamp passes it, the
// cardinality, whose own intersection term cancels against fp and fn.
fn class_coef_ref(r: Sums, g: Ext) -> Coef {
    let t = smp_terms(r);
    let gl = ext_mul(g, present(r.st));
    var gscore = ext_neg(gl);
    if (params.log_loss != 0u) {
        gscore = fin(0.0);
        if (ext_le(fin(params.eps), t.score)) {
            gscore = ext_div(ext_neg(gl), t.score);
        }
    }
    let gnum = ext_div(gscore, t.card);
    var gcard = fin(0.0);
    if (ext_le(fin(params.eps), t.raw)) {
        let num = ext_mul(ext_neg(gscore), ext_add(t.inter, fin(params.smoothing)));
        gcard = ext_div(num, ext_mul(t.card, t.card));
    }
    let half = ext_mul(fin(0.5), gcard);
    let ginter = ext_sub(ext_sub(ext_add(gnum, gcard), half), half);
    return Coef(ext_add(half, ext_mul(fin(0.5), ginter)), ext_mul(fin(-0.5), ginter));
}

@compute @workgroup_size(256)
fn finish(@builtin(local_invocation_index) lid: u32) {
    let classes = params.classes;
    let sums = arrayLength(&out) >= 3u + 3u * classes;
    var total = fin(0.0);
    for (var c = 0u; c < classes; c = c + 1u) {
        var acc = vec4<f32>(0.0);
        var kinds = 0u;
        for (var g = lid; g < params.groups; g = g + WG) {
            let j = 4u * (g * classes + c);
            let p = ext(scratch[j]);
            let t = ext(scratch[j + 1u]);
            let d = ext(scratch[j + 2u]);
            let both = ext(scratch[j + 3u]);
            kinds = kinds | term_kinds(p, t, d, both);
            acc = acc + vec4(p.v, t.v, d.v, both.v);
        }
        let r = sums_of(reduce_wg_kinds(lid, acc, kinds, c));
        if (lid == 0u) {
            let finite = finite_sums(r);
            var l = class_loss_ref(r);
            if (finite) {
                l = class_loss(r);
            }
            total = ext_add(total, l);
            if (params.grad != 0u) {
                // One upstream per class for `none` (or one for all of them).
                var g = ext(side[0]);
                if (params.write_items != 0u && arrayLength(&side) > 1u) {
                    g = ext(side[c]);
                }
                if (params.mean != 0u) {
                    g = ext_div(g, fin(f32(classes)));
                }
                var co = class_coef_ref(r, g);
                if (finite) {
                    co = class_coef(r, g);
                }
                scratch[params.coef_at + 2u * c] = ext_f32(co.a);
                scratch[params.coef_at + 2u * c + 1u] = ext_f32(co.b);
            }
            if (params.write_items != 0u) {
                out[c] = ext_f32(l);
            } else if (sums) {
                let j = 3u + 3u * c;
                out[j] = ext_f32(r.sp);
                out[j + 1u] = ext_f32(r.st);
                out[j + 2u] = ext_f32(r.d);
            }
        }
    }
    if (lid == 0u && params.write_items == 0u) {
        var v = total;
        if (params.mean != 0u) {
            v = ext_div(total, fin(f32(classes)));
        }
        out[0] = ext_f32(v);
        if (sums) {
            out[1] = ext_f32(total);
            out[2] = f32(classes);
        }
    }
}

// d loss / d probability of class c: p and t masked, sign(0) = 0 (and, as in
// the twin, 0 for NaN: NaN sums make the coefficients NaN anyway).
fn grad_prob(c: u32, p: Ext, t: Ext, m: f32) -> Ext {
    return grad_prob_of(coef_a(c), coef_b(c), p, t, m);
}

fn coef_a(c: u32) -> Ext { return ext(side[params.coef_at + 2u * c]); }
fn coef_b(c: u32) -> Ext { return ext(side[params.coef_at + 2u * c + 1u]); }

// `grad_prob` with the class's coefficients (a, b) at hand.
fn grad_prob_of(a: Ext, b: Ext, p: Ext, t: Ext, m: f32) -> Ext {
    let s = ext_sign(ext_sub(ext_mul(p, fin(m)), t));
    return ext_mul(ext_add(a, ext_mul(b, fin(s))), fin(m));
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
        let ct = class_target_of(q, classes);
        m = select(0.0, 1.0, ct.keep);
        if (ct.bad) {
            // As in the forward: a bad class index gives NaN, never a number.
            for (var c = 0u; c < classes; c = c + 1u) {
                out[first + c * inner] = kind_bits(K_NAN);
            }
            return;
        }
        y = select(-1, ct.y, ct.keep);
    }
    if (params.activation == SOFTMAX) {
        // p = softmax(x), as in `main`; d/dx_k = p_k (g_k − Σ_j g_j p_j). The
        // sum over j is taken with the normaliser in one walk: for j ≠ y the
        // sign of p_j − 0 is that of e_j (a p_j that rounds to 0 weighs
        // nothing either way); the target class's sign needs p_y itself.
        var mx = -FLT_MAX;
        var poison = false;
        for (var c = 0u; c < classes; c = c + 1u) {
            let x = ext(ld_input(first + c * inner));
            if (x.k == K_NAN || x.k == K_PINF) {
                poison = true;
            } else if (x.k == K_FIN) {
                mx = max(mx, x.v);
            }
        }
        var s = 0.0;
        var dot = fin(0.0);
        for (var c = 0u; c < classes; c = c + 1u) {
            let x = ld_input(first + c * inner);
            var e = 0.0;
            if (is_fin(x)) {
                e = exp(x - mx);
            }
            s = s + e;
            if (i32(c) != y) {
                dot = ext_add(dot, ext_mul(grad_prob(c, fin(e), fin(0.0), m), fin(e)));
            }
        }
        // As in `main` (softmax_of): NaN for every class.
        if (poison || s == 0.0) {
            for (var c = 0u; c < classes; c = c + 1u) {
                out[first + c * inner] = kind_bits(K_NAN);
            }
            return;
        }
        let st = Softmax(mx, s, false);
        dot = ext_div(dot, fin(st.s));
        if (y >= 0) {
            let p = softmax_p(ld_input(first + u32(y) * inner), st);
            dot = ext_add(dot, ext_mul(grad_prob(u32(y), p, fin(1.0), m), p));
        }
        for (var c = 0u; c < classes; c = c + 1u) {
            let i = first + c * inner;
            let p = softmax_p(ld_input(i), st);
            let t = fin(select(0.0, 1.0, i32(c) == y));
            out[i] = ext_f32(ext_mul(p, ext_sub(grad_prob(c, p, t, m), dot)));
        }
        return;
    }
    for (var c = 0u; c < classes; c = c + 1u) {
        let i = first + c * inner;
        let x = ext(ld_input(i));
        var t: Ext;
        var mc = m;
        if (params.class_target != 0u) {
            t = fin(select(0.0, 1.0, i32(c) == y));
        } else {
            let raw = ld_target(i);
            mc = select(0.0, 1.0, params.has_ignore == 0u || raw != params.ignore);
            t = ext_mul(ext(raw), fin(mc));
        }
        if (params.activation == SIGMOID) {
            // p = exp(logsigmoid(x)): dp/dx = p σ(−x).
            let p = ext_sigmoid(x);
            out[i] = ext_f32(ext_mul(ext_mul(grad_prob(c, p, t, mc), p), ext_sigmoid(ext_neg(x))));
        } else {
            out[i] = ext_f32(grad_prob(c, x, t, mc));
        }
    }
}

// `dice-pixels`' backward: `gradient`'s rule over the pixels of `pixels`,
// each pixel's classes loaded once, the coefficients once per invocation.
// A softmax against class indices with coefficients below 2^60 (every dice
// loss's, unless its sums are not finite or eps is tiny) takes plain f32
// math, which cannot overflow there; the rest takes extended reals. The two
// are separate loops whose trip counts the coefficients choose, not two sides
// of a branch: a CPU adapter runs both sides of a branch it cannot prove
// uniform for every pixel, and a loop of no trips only once.
@compute @workgroup_size(256)
fn pixels_gradient(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let per = params.per_thread;
    let start = (group * WG + lid) / TEAM * TEAM * per + lid % TEAM;
    let inner = params.inner;
    var ca: array<Ext, PIXEL_CLASSES>;
    var cb: array<Ext, PIXEL_CLASSES>;
    var small = CLASS_TARGET && ACTIVATION == SOFTMAX;
    for (var c = 0u; c < CLASSES; c = c + 1u) {
        ca[c] = coef_a(c);
        cb[c] = coef_b(c);
        small = small && ca[c].k == K_FIN && cb[c].k == K_FIN && abs(ca[c].v) < 0x1p60 && abs(cb[c].v) < 0x1p60;
    }
    let plain = select(0u, per, small);
    var w = walk_from(start);
    for (var k = 0u; k < plain; k = k + 1u) {
        let q = start + k * TEAM;
        if (q >= params.pixels) {
            break;
        }
        let first = walk_first(w);
        w = walk_step(w);
        let ct = class_target_of(q, CLASSES);
        let m = select(0.0, 1.0, ct.keep);
        let y = select(-1, ct.y, ct.keep);
        var x: array<f32, PIXEL_CLASSES>;
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            x[c] = ld_input(first + c * inner);
        }
        let p = pixel_probs(x);
        // NaN for every class after a bad class index or a poisoned softmax,
        // as in `gradient`.
        let nan = ct.bad || p[0].k == K_NAN;
        var g: array<f32, PIXEL_CLASSES>;
        var dot = 0.0;
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            let d = p[c].v * m - select(0.0, 1.0, i32(c) == y);
            let s = select(select(1.0, -1.0, sign_bit(d)), 0.0, is_zero(d));
            g[c] = (ca[c].v + cb[c].v * s) * m;
            dot = dot + g[c] * p[c].v;
        }
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            out[first + c * inner] = select(p[c].v * (g[c] - dot), kind_bits(K_NAN), nan);
        }
    }
    for (var k = plain; k < per; k = k + 1u) {
        let q = start + k * TEAM;
        if (q >= params.pixels) {
            break;
        }
        let first = walk_first(w);
        w = walk_step(w);
        var y = -1;
        var m = 1.0;
        var poison = false;
        if (CLASS_TARGET) {
            let ct = class_target_of(q, CLASSES);
            poison = ct.bad;
            m = select(0.0, 1.0, ct.keep);
            y = select(-1, ct.y, ct.keep);
        }
        var x: array<f32, PIXEL_CLASSES>;
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            x[c] = ld_input(first + c * inner);
        }
        let p = pixel_probs(x);
        if (poison || (ACTIVATION == SOFTMAX && p[0].k == K_NAN)) {
            for (var c = 0u; c < CLASSES; c = c + 1u) {
                out[first + c * inner] = kind_bits(K_NAN);
            }
            continue;
        }
        if (ACTIVATION == SOFTMAX) {
            var g: array<Ext, PIXEL_CLASSES>;
            var dot = fin(0.0);
            for (var c = 0u; c < CLASSES; c = c + 1u) {
                let t = fin(select(0.0, 1.0, i32(c) == y));
                g[c] = grad_prob_of(ca[c], cb[c], p[c], t, m);
                dot = ext_add(dot, ext_mul(g[c], p[c]));
            }
            for (var c = 0u; c < CLASSES; c = c + 1u) {
                out[first + c * inner] = ext_f32(ext_mul(p[c], ext_sub(g[c], dot)));
            }
            continue;
        }
        for (var c = 0u; c < CLASSES; c = c + 1u) {
            let i = first + c * inner;
            var t: Ext;
            var mc = m;
            if (CLASS_TARGET) {
                t = fin(select(0.0, 1.0, i32(c) == y));
            } else {
                let raw = ld_target(i);
                mc = select(0.0, 1.0, params.has_ignore == 0u || raw != params.ignore);
                t = ext_mul(ext(raw), fin(mc));
            }
            let g = grad_prob_of(ca[c], cb[c], p[c], t, mc);
            if (ACTIVATION == SIGMOID) {
                // p = exp(logsigmoid(x)): dp/dx = p σ(−x).
                out[i] = ext_f32(ext_mul(ext_mul(g, p[c]), ext_sigmoid(ext_neg(ext(x[c])))));
            } else {
                out[i] = ext_f32(g);
            }
        }
    }
}
