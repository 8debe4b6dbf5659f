// Row-vector losses over (rows, dim): one thread per row loops over the row,
// then the workgroup sums (loss, 1) partials for finalize.wgsl, or writes the
// per-row losses with `write_items` set. A dispatch covers one slice of whole
// rows (inputs may be longer than one binding); every partial goes to
// `partial_base + group` in the scratch shared by all slices.
//
// Row sums use compensated (Neumaier) summation: 1 - cos and margin + d_ap -
// d_an are small differences of large quantities, so the sums must carry more
// than f32 precision for rows of a few thousand elements.
//
// Params must be kept in sync with `PairsParams` in src/gpu/pairs.rs.
struct Params {
    rows: u32,
    dim: u32,
    write_items: u32,
    groups_x: u32,
    // cosine_embedding: labels given; triplet_margin: swap.
    flag: u32,
    // triplet_margin: 0 general p, 1 p = 1, 2 p = 2, 3 p = inf.
    norm: u32,
    margin: f32,
    p: f32,
    eps: f32,
    // Values bound before the slice's first row: bindings start 256-byte
    // aligned, slices need not (`skip` in the row tensors, `row_skip` in the
    // labels and the items).
    skip: u32,
    row_skip: u32,
    partial_base: u32,
}

// cosine_embedding: input = x1, second = x2, labels. triplet_margin: input =
// anchor, second = positive, third = negative.
@group(0) @binding(0) var<storage, read> input: array<f32>;
@group(0) @binding(1) var<storage, read> second: array<f32>;
@group(0) @binding(2) var<storage, read> third: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> params: Params;

// Loss ids: must match `loss_id` in src/gpu/pairs.rs.
override LOSS: u32 = 0u;
const COSINE_EMBEDDING: u32 = 0u;
const TRIPLET_MARGIN: u32 = 1u;

const NORM_P: u32 = 0u;
const NORM_1: u32 = 1u;
const NORM_2: u32 = 2u;
const NORM_INF: u32 = 3u;

// A running sum and the rounding error it has dropped so far.
struct Acc {
    s: f32,
    c: f32,
}

fn acc_add(a: Acc, x: f32) -> Acc {
    let t = a.s + x;
    let e = select((x - t) + a.s, (a.s - t) + x, abs(a.s) >= abs(x));
    return Acc(t, a.c + e);
}

// An overflowed sum has a NaN correction: keep the infinity, as a plain sum would.
fn acc_total(a: Acc) -> f32 {
    return select(a.s + a.c, a.s, abs(a.s) == inf());
}

// max that propagates NaN (WGSL's max may drop it).
fn max_nan(a: f32, b: f32) -> f32 {
    return select(max(a, b), nan(), is_nan(a) || is_nan(b));
}

// CosineEmbeddingLoss: cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12)).
// The norms are multiplied after their square roots, which cannot overflow
// where the product of the squares would.
fn cosine_embedding(r: u32) -> f32 {
    let base = params.skip + r * params.dim;
    var dot = Acc(0.0, 0.0);
    var m1 = Acc(0.0, 0.0);
    var m2 = Acc(0.0, 0.0);
    for (var k = 0u; k < params.dim; k = k + 1u) {
        let a = input[base + k];
        let b = second[base + k];
        dot = acc_add(dot, a * b);
        m1 = acc_add(m1, a * a);
        m2 = acc_add(m2, b * b);
    }
    let denom = sqrt(acc_total(m1) + 1e-12) * sqrt(acc_total(m2) + 1e-12);
    let cos = acc_total(dot) / denom;
    var y = 1.0;
    if (params.flag != 0u) {
        y = labels[params.row_skip + r];
    }
    if (y == 1.0) {
        return 1.0 - cos;
    }
    if (y == -1.0) {
        return clamp_min(cos - params.margin, 0.0);
    }
    return 0.0;
}

// |v|^p, plain products for p = 1 and 2; 0 stays 0 (the log of 0 is not
// defined everywhere).
fn pow_p(v: f32) -> f32 {
    let a = abs(v);
    if (params.norm == NORM_1) {
        return a;
    }
    if (params.norm == NORM_2) {
        return a * a;
    }
    if (a == 0.0) {
        return 0.0;
    }
    return exp2(params.p * ln(a) / LN2);
}

// s^(1/p) for the general norm.
fn root_p(s: f32) -> f32 {
    if (s == 0.0) {
        return 0.0;
    }
    return exp2(ln(s) / LN2 / params.p);
}

// d_ap - d_x from the sums of |v|^p (s_ap, s_x) and their termwise
// difference ds = sum(|v_ap|^p - |v_x|^p), without subtracting two rounded
// distances: that would cost an ulp of the distance, far more than the result
// near the hinge.
fn distance_gap(s_ap: f32, s_x: f32, ds: f32) -> f32 {
    if (params.norm == NORM_1) {
        return ds;
    }
    if (params.norm == NORM_2) {
        // d_ap - d_x = (s_ap - s_x) / (d_ap + d_x).
        let d = sqrt(s_ap) + sqrt(s_x);
        // An infinite distance takes the plain difference (inf - x, or NaN
        // for inf - inf), where ds / d would be inf / inf.
        if (d == inf()) {
            return sqrt(s_ap) - sqrt(s_x);
        }
        return select(ds / d, 0.0, d == 0.0);
    }
    // d_ap - d_x = d_x (w^(1/p) - 1), w = s_ap / s_x = 1 + ds / s_x: the
    // rounding errors of the p-th roots then scale with the result, not with
    // the distances. Zero, infinite or NaN ratios take the plain difference.
    let w = s_ap / s_x;
    if (!(w > 0.0 && w < inf())) {
        return root_p(s_ap) - root_p(s_x);
    }
    let r = ds / s_x;
    let lw = select(ln(w), log1p(r), abs(r) < 0.5);
    return root_p(s_x) * expm1(lw / params.p);
}

// TripletMarginLoss: max(margin + d(a, p) - d(a, n), 0), d(u, w) = |u - w + eps|_p,
// with swap d(a, n) -> min(d(a, n), d(p, n)).
fn triplet_margin(r: u32) -> f32 {
    let base = params.skip + r * params.dim;
    let eps = params.eps;
    let swap = params.flag != 0u;
    if (params.norm == NORM_INF) {
        var m_ap = 0.0;
        var m_an = 0.0;
        var m_pn = 0.0;
        for (var k = 0u; k < params.dim; k = k + 1u) {
            let a = input[base + k];
            let p = second[base + k];
            let n = third[base + k];
            m_ap = max_nan(m_ap, abs(a - p + eps));
            m_an = max_nan(m_an, abs(a - n + eps));
            if (swap) {
                m_pn = max_nan(m_pn, abs(p - n + eps));
            }
        }
        // torch.min(d(a, n), d(p, n)) before the difference: inf - min(inf, x)
        // is inf, where the larger of inf - inf and inf - x would be NaN.
        var m_neg = m_an;
        if (swap && (m_pn < m_an || is_nan(m_pn))) {
            m_neg = m_pn;
        }
        return clamp_min(params.margin + (m_ap - m_neg), 0.0);
    }
    var s_ap = Acc(0.0, 0.0);
    var s_an = Acc(0.0, 0.0);
    var s_pn = Acc(0.0, 0.0);
    var ds_an = Acc(0.0, 0.0);
    var ds_pn = Acc(0.0, 0.0);
    for (var k = 0u; k < params.dim; k = k + 1u) {
        let a = input[base + k];
        let p = second[base + k];
        let n = third[base + k];
        let t_ap = pow_p(a - p + eps);
        let t_an = pow_p(a - n + eps);
        s_ap = acc_add(s_ap, t_ap);
        s_an = acc_add(s_an, t_an);
        ds_an = acc_add(ds_an, t_ap - t_an);
        if (swap) {
            let t_pn = pow_p(p - n + eps);
            s_pn = acc_add(s_pn, t_pn);
            ds_pn = acc_add(ds_pn, t_ap - t_pn);
        }
    }
    let sap = acc_total(s_ap);
    let san = acc_total(s_an);
    let spn = acc_total(s_pn);
    // torch.min(d(a, n), d(p, n)) first (the p-th powers order as the
    // distances do), then the gap to the smaller one.
    if (swap && (spn < san || is_nan(spn))) {
        return clamp_min(params.margin + distance_gap(sap, spn, acc_total(ds_pn)), 0.0);
    }
    return clamp_min(params.margin + distance_gap(sap, san, acc_total(ds_an)), 0.0);
}

fn item(r: u32) -> f32 {
    switch LOSS {
        case COSINE_EMBEDDING: { return cosine_embedding(r); }
        case TRIPLET_MARGIN: { return triplet_margin(r); }
        default: { return nan(); }
    }
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let r = group * WG + lid;
    var acc = vec4<f32>(0.0);
    if (r < params.rows) {
        let l = item(r);
        if (params.write_items != 0u) {
            out[params.row_skip + r] = l;
        } else {
            acc = vec4(l, 1.0, 0.0, 0.0);
        }
    }
    if (params.write_items == 0u) {
        let total = reduce_wg(lid, acc);
        if (lid == 0u) {
            let at = 2u * (params.partial_base + group);
            out[at] = total.x;
            out[at + 1u] = total.y;
        }
    }
}
