// The pair kernels' driver for a subgroup per row (pairs.wgsl holds the loss
// math), built only where the device has `Features::SUBGROUP`. Nothing here
// assumes a subgroup size: subgroup `s` of workgroup `g` takes rows
// g * num_subgroups + s, then strides by every subgroup of the dispatch, so
// the rows are covered whatever size the device picks. The host sizes the
// grid for the adapter's largest subgroups; smaller ones leave some
// subgroups without a row.

// The invocation's subgroup size, for the butterfly below.
var<private> subgroup_lanes: u32;

// Joins `v` across the subgroup: sums with subgroupAdd, the compensated sums
// and the maxima by a butterfly of shuffles (partners swap values and merge
// them alike, so every lane ends with the same result). Called by every
// invocation of the subgroup together.
fn row_merge(lid: u32, how: u32, v: Two) -> Two {
    if (how == MERGE_SUM) {
        return Two(subgroupAdd(v.a), subgroupAdd(v.b));
    }
    var t = v;
    for (var o = 1u; o < subgroup_lanes; o = o << 1u) {
        t = merge(how, t, Two(subgroupShuffleXor(t.a, o), subgroupShuffleXor(t.b, o)));
    }
    return t;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) size: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
) {
    subgroup_lanes = size;
    let group = wid.x + wid.y * params.groups_x;
    let stride = groups.x * groups.y * subgroups;
    var acc = vec4<f32>(0.0);
    var kinds = 0u;
    for (var r = group * subgroups + subgroup; r < params.rows; r = r + stride) {
        let l = item(Seat(r, lane, size, params.dim), lid);
        if (lane == 0u) {
            if (params.write_items != 0u) {
                out[params.row_skip + r] = ext_f32(l);
            } else {
                kinds = kinds | kind_flag(l.k);
                acc = acc + vec4(l.v, 1.0, 0.0, 0.0);
            }
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
