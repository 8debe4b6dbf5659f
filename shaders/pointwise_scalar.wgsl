// `point-scalar`: the elementwise losses with one f32 per load (see
// pointwise.wgsl, which precedes this file in the module), and the weight
// pre-pass and `total` that every variant's schedule uses.

// Float tensors as words of their dtype (`element`, common.wgsl), which the
// `DTYPE_<binding>` override of each names.
@group(0) @binding(0) var<storage, read> input: array<u32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read> weight: array<u32>;
@group(0) @binding(3) var<storage, read> aux: array<u32>;
// One value per element of the slice, or a single one for every element.
@group(0) @binding(4) var<storage, read> upstream: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> grad: array<f32>;
@group(0) @binding(7) var<uniform> params: Params;

override DTYPE_0: u32 = DT_F32;
override DTYPE_1: u32 = DT_F32;
override DTYPE_2: u32 = DT_F32;
override DTYPE_3: u32 = DT_F32;

fn ld_input(i: u32) -> f32 { return element(input[word_of(i, DTYPE_0)], i, DTYPE_0); }
fn ld_target(i: u32) -> f32 { return element(targets[word_of(i, DTYPE_1)], i, DTYPE_1); }
fn ld_weight(i: u32) -> f32 { return element(weight[word_of(i, DTYPE_2)], i, DTYPE_2); }
fn ld_aux(i: u32) -> f32 { return element(aux[word_of(i, DTYPE_3)], i, DTYPE_3); }

fn load(i: u32) -> Elem {
    var e: Elem;
    e.x = ld_input(i);
    e.y = ld_target(i / params.per_target);
    let g = params.base + i;
    e.w = 1.0;
    if (WEIGHT) {
        if (params.w_sliced != 0u) {
            e.w = ld_weight(i);
        } else {
            e.w = ld_weight((g / params.w_inner) % params.w_len);
        }
    }
    e.a = params.p0;
    if (AUX) {
        if (params.a_sliced != 0u) {
            e.a = ld_aux(i);
        } else {
            e.a = ld_aux((g / params.a_inner) % params.a_len);
        }
    }
    return e;
}

// The upstream of a reduced call, scaled by its reduction (a mean over zero
// weights gives ±inf or NaN, as the reference's g / 0).
fn reduced_scale() -> Ext {
    let g = ext(upstream[0]);
    if (params.scale_mode == 1u) {
        return ext_div(g, ext(params.divisor));
    }
    if (params.scale_mode == 2u) {
        return ext_div(g, ext(out[params.d_at]));
    }
    return g;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    var s = fin(0.0);
    // A single upstream value serves every element (a reduced call, or a
    // scalar for `none`); otherwise each element has its own.
    var each = false;
    if (GRAD) {
        if (WRITE_ITEMS) {
            s = ext(upstream[0]);
            each = arrayLength(&upstream) > 1u;
        } else {
            s = reduced_scale();
        }
    }
    var acc = vec4<f32>(0.0);
    var part = vec4<f32>(0.0);
    var kinds = 0u;
    let start = params.first + (group * WG + lid) / TEAM * TEAM * params.per_thread + lid % TEAM;
    for (var k0 = 0u; k0 < params.per_thread; k0 = k0 + RUN) {
        let end = min(k0 + RUN, params.per_thread);
        // Bit k - k0: element k is rare (see `rare`).
        var rares = 0u;
        for (var k = k0; k < end; k = k + 1u) {
            let i = start + k * TEAM;
            if (i < params.n) {
                let raw = load(i);
                let r = splits() && rare(raw);
                rares = rares | select(0u, 1u << (k - k0), r);
                let e = fin_elem(raw, r);
                // A rare element's results are stored again below.
                let v = value_fin(e);
                if (WRITE_ITEMS) {
                    out[i] = ext_f32(v.l);
                } else {
                    // The sums add finite parts only; kinds join at the store.
                    add_item(&part, &kinds, v, r);
                }
                if (GRAD) {
                    grad[i] = ext_f32(slope_fin(e, upstream_at(s, each, i)));
                }
            }
        }
        while (rares != 0u) {
            let i = start + (k0 + firstTrailingBit(rares)) * TEAM;
            rares = rares & (rares - 1u);
            let e = load(i);
            let v = value(e);
            if (WRITE_ITEMS) {
                out[i] = ext_f32(v.l);
            } else {
                add_item(&part, &kinds, v, false);
            }
            if (GRAD) {
                grad[i] = ext_f32(slope(e, upstream_at(s, each, i)));
            }
        }
        // The run's sum joins the thread's (see `RUN`).
        acc = acc + part;
        part = vec4<f32>(0.0);
    }
    if (!WRITE_ITEMS) {
        let rk = reduce_wg_kinds(lid, acc + part, kinds, 0u);
        let r = pair_value(rk.v.xy, rk.kinds);
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

// Pre-pass of a weighted mean's gradient: per-workgroup sums of the weight,
// the finite parts summed and the kinds of the others joined at the store.
@compute @workgroup_size(256)
fn weight_sum(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let base = group * WG * ITEMS;
    var acc = vec4<f32>(0.0);
    var kinds = 0u;
    for (var k = 0u; k < ITEMS; k = k + 1u) {
        let i = base + k * WG + lid;
        if (i < params.n) {
            let w = ext(ld_weight(i));
            kinds = kinds | kind_flag(w.k);
            acc.x = acc.x + w.v;
        }
    }
    let rk = reduce_wg_kinds(lid, acc, kinds, 0u);
    if (lid == 0u) {
        out[params.partial_base + group] = ext_f32(with_kinds(rk.v.x, rk.kinds));
    }
}

// Sums `n` single-float partials of the scratch from `partial_base` into
// out[d_at], times `repeat`: the weight's total for weight_sum's partials, and
// the same for other families' denominators. Partials that are not finite
// join as kinds, as in weight_sum.
@compute @workgroup_size(256)
fn total(@builtin(local_invocation_index) lid: u32) {
    var acc = vec4<f32>(0.0);
    var kinds = 0u;
    for (var i = lid; i < params.n; i = i + WG) {
        let v = ext(out[params.partial_base + i]);
        kinds = kinds | kind_flag(v.k);
        acc.x = acc.x + v.v;
    }
    let rk = reduce_wg_kinds(lid, acc, kinds, 0u);
    if (lid == 0u) {
        out[params.d_at] = ext_f32(ext_mul(with_kinds(rk.v.x, rk.kinds), ext(params.repeat)));
    }
}
