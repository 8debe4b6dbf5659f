// The pair kernels' driver for lanes of a workgroup (pairs.wgsl holds the
// loss math): `params.lanes` neighbouring invocations per row, WG / lanes
// rows per workgroup. The host picks lanes = 1 (a thread per row, no join),
// a few up to WG / 2 (several short rows per workgroup) or WG (a workgroup
// per row).

// The second half of the shared-memory tree (`red` in common.wgsl holds the
// first).
var<workgroup> red_b: array<vec4<f32>, WG>;

// Joins `v` across the row's lanes by a tree in shared memory, segment by
// segment: lane i adds lane i + s for s = lanes / 2, .., 1, and every lane
// reads lane 0's result. Every invocation of the workgroup calls it; the
// branch on `params.lanes` is uniform.
fn row_merge(lid: u32, how: u32, v: Two) -> Two {
    let lanes = params.lanes;
    if (lanes <= 1u) {
        return v;
    }
    red[lid] = v.a;
    red_b[lid] = v.b;
    workgroupBarrier();
    let lane = lid & (lanes - 1u);
    for (var s = lanes >> 1u; s > 0u; s = s >> 1u) {
        if (lane < s) {
            let m = merge(how, Two(red[lid], red_b[lid]), Two(red[lid + s], red_b[lid + s]));
            red[lid] = m.a;
            red_b[lid] = m.b;
        }
        workgroupBarrier();
    }
    let first = lid - lane;
    let t = Two(red[first], red_b[first]);
    workgroupBarrier();
    return t;
}

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let group = wid.x + wid.y * params.groups_x;
    let lanes = max(params.lanes, 1u);
    let r = group * (WG / lanes) + lid / lanes;
    var seat = Seat(r, lid & (lanes - 1u), lanes, params.dim);
    if (!live(seat)) {
        seat.len = 0u;
    }
    let l = item(seat, lid);
    var acc = vec4<f32>(0.0);
    var kinds = 0u;
    if (live(seat) && seat.lane == 0u) {
        if (params.write_items != 0u) {
            out[params.row_skip + r] = ext_f32(l);
        } else {
            // The sums add finite values only; kinds join at the store.
            kinds = kind_flag(l.k);
            acc = vec4(l.v, 1.0, 0.0, 0.0);
        }
    }
    if (params.write_items == 0u) {
        let rk = reduce_wg_kinds(lid, acc, kinds, 0u);
        let total = pair_value(rk.v.xy, rk.kinds);
        if (lid == 0u) {
            let at = 2u * (params.partial_base + group);
            out[at] = total.x;
            out[at + 1u] = total.y;
        }
    }
}
