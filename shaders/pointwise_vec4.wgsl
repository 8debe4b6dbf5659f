// `point-vec4`: the elementwise losses (pointwise.wgsl, which precedes this
// file in the module) with every element-aligned tensor loaded four elements
// at a time and the results stored as vec4<f32>, neighbouring invocations
// reading neighbouring 16-byte vectors. On lavapipe a SIMD group then loads
// whole vectors where the scalar kernel's loads are gathers; on a GPU each
// load instruction moves four times the bytes.
//
// The host (src/gpu/pointwise.rs) offers it only where the weight and the aux
// tensor are absent or as long as the input (a broadcast cannot be read as a
// vector) and each target serves one element; it binds each slice's first
// n - n % 4 elements here (slices start 256-byte aligned) and leaves the
// rest to pointwise_scalar.wgsl's `main`, from `first`. `params.n` is then a
// multiple of 4.

// The tensors it reads (bindings 0-3) are declared with their loads
// `ld4_input`, `ld4_target`, `ld4_weight` and `ld4_aux` of vector j, which
// precede this file: pointwise_vec4_f32.wgsl or, for half-precision
// tensors, pointwise_vec4_half.wgsl.
// A single value for every element, or one per element: f32, since a single
// value is bound as 4 bytes, too few for a vec4.
@group(0) @binding(4) var<storage, read> upstream: array<f32>;
// The items, or the scratch of partials (a whole number of vec4s).
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> grad: array<vec4<f32>>;
@group(0) @binding(7) var<uniform> params: Params;

// Vector j of an element-aligned tensor bound per slice (`sliced`) or whole
// (indexed by the element of the whole tensor).
fn vec_at(j: u32, sliced: u32) -> u32 {
    return select(params.base / 4u + j, j, sliced != 0u);
}

fn scratch_read(k: u32) -> f32 {
    return out[k / 4u][k % 4u];
}

// As pointwise_scalar.wgsl's `reduced_scale`.
fn reduced_scale() -> Ext {
    let g = ext(upstream[0]);
    if (params.scale_mode == 1u) {
        return ext_div(g, ext(params.divisor));
    }
    if (params.scale_mode == 2u) {
        return ext_div(g, ext(scratch_read(params.d_at)));
    }
    return g;
}

@compute @workgroup_size(256)
fn main_vec4(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let group = wid.x + wid.y * params.groups_x;
    let n4 = params.n / 4u;
    var s = fin(0.0);
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
    // Each team of TEAM4 neighbouring invocations walks a run of its own,
    // `per_thread` steps of one vector a lane (see `TEAM` in pointwise.wgsl).
    let start = (group * WG + lid) / TEAM4 * TEAM4 * params.per_thread + lid % TEAM4;
    // Runs of RUN / 4 vectors, a bit per element for the rare ones (see
    // `rare` in pointwise.wgsl).
    let run = RUN / 4u;
    for (var k0 = 0u; k0 < params.per_thread; k0 = k0 + run) {
        let end = min(k0 + run, params.per_thread);
        var rares = 0u;
        for (var k = k0; k < end; k = k + 1u) {
            let j = start + k * TEAM4;
            if (j >= n4) {
                break;
            }
            let x = ld4_input(j);
            let y = ld4_target(j);
            var w = vec4<f32>(1.0);
            if (WEIGHT) {
                w = ld4_weight(vec_at(j, params.w_sliced));
            }
            var a = vec4<f32>(params.p0);
            if (AUX) {
                a = ld4_aux(vec_at(j, params.a_sliced));
            }
            var l = vec4<f32>(0.0);
            var g = vec4<f32>(0.0);
            for (var c = 0u; c < 4u; c = c + 1u) {
                let raw = Elem(x[c], y[c], w[c], a[c]);
                let r = splits() && rare(raw);
                rares = rares | select(0u, 1u << (4u * (k - k0) + c), r);
                let e = fin_elem(raw, r);
                // A rare element's results are stored again below.
                let v = value_fin(e);
                if (WRITE_ITEMS) {
                    l[c] = ext_f32(v.l);
                } else {
                    add_item(&part, &kinds, v, r);
                }
                if (GRAD) {
                    g[c] = ext_f32(slope_fin(e, upstream_at(s, each, 4u * j + c)));
                }
            }
            if (WRITE_ITEMS) {
                out[j] = l;
            }
            if (GRAD) {
                grad[j] = g;
            }
        }
        while (rares != 0u) {
            let b = firstTrailingBit(rares);
            rares = rares & (rares - 1u);
            let j = start + (k0 + b / 4u) * TEAM4;
            let c = b % 4u;
            var e = Elem(ld4_input(j)[c], ld4_target(j)[c], 1.0, params.p0);
            if (WEIGHT) {
                e.w = ld4_weight(vec_at(j, params.w_sliced))[c];
            }
            if (AUX) {
                e.a = ld4_aux(vec_at(j, params.a_sliced))[c];
            }
            let v = value(e);
            if (WRITE_ITEMS) {
                out[j][c] = ext_f32(v.l);
            } else {
                add_item(&part, &kinds, v, false);
            }
            if (GRAD) {
                grad[j][c] = ext_f32(slope(e, upstream_at(s, each, 4u * j + c)));
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
            // Partials are pairs at even positions: half a vector each.
            let at = 2u * (params.partial_base + group);
            out[at / 4u][at % 4u] = r.x;
            out[at / 4u][at % 4u + 1u] = r.y;
        }
    }
}
