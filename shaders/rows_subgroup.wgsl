// The softmax-row entry point that needs `Features::SUBGROUP`, appended to
// common.wgsl and rows.wgsl in a module of its own (`ROWS_SUBGROUP` in
// src/context.rs), so that the other entry points still build on a device
// without subgroups. naga takes subgroup built-ins without `enable subgroups;`
// (it rejects the directive); a browser's WebGPU would need it prepended.
//
// The subgroup size is read at run time (8 on lavapipe, 32 on NVIDIA, 32 or
// 64 on AMD, at least 4 wherever wgpu offers subgroups): nothing here assumes
// one, nor how local invocation indices map onto subgroups.

// The state of a whole row from each lane's state of part of it: what a tree
// of `merge` would give, in one step of subgroup operations. Every lane's
// states move to the row's maximum M; the one lane (the lowest) that holds M
// adds its r as it is, the others r + 1, so that r keeps excluding exactly one
// arg-max. Call from subgroup-uniform control flow.
fn subgroup_merge(st: State, lane: u32) -> State {
    let f = subgroupOr(st.f);
    let b = subgroupAdd(st.b);
    if ((f & SEEN) == 0u) {
        return State(-FLT_MAX, 0.0, subgroupAdd(st.a), b, f);
    }
    let s = seen(st);
    // Lanes that saw no finite logit hold m = -FLT_MAX.
    let m = subgroupMax(select(-FLT_MAX, st.m, s));
    let lead = subgroupMin(select(0xffffffffu, lane, s && st.m == m));
    var r = 0.0;
    var a = st.a;
    if (s) {
        r = select((st.r + 1.0) * exp(st.m - m), st.r, lane == lead);
        a = a + st.b * (m - st.m);
    }
    return State(m, subgroupAdd(r), subgroupAdd(a), b, f);
}

// A subgroup per row: the workgroup's `per_group` rows go to its subgroups in
// turn, so that each subgroup takes per_group / num_subgroups of them whatever
// their size. Lanes read neighbouring logits (coalesced where inner == 1) and
// merge without a barrier.
@compute @workgroup_size(256)
fn row_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(num_subgroups) subgroups: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) size: u32,
) {
    let group = wid.x + wid.y * params.groups_x;
    let first = group * params.per_group;
    var v = Item(fin(0.0), fin(0.0));
    for (var k = sg; k < params.per_group; k = k + subgroups) {
        let r = first + k;
        if (r >= params.rows) {
            break;
        }
        let y = target_class(r);
        var whole = empty();
        if (scans(y)) {
            whole = subgroup_merge(scan_part(r, y, lane, params.classes, size), lane);
        }
        let xy = target_logit(r, y);
        if (lane == 0u) {
            let it = row_item(r, y, whole, xy);
            if (params.write_items != 0u) {
                out[params.o_skip + r] = ext_f32(it.l);
            }
            v = add_items(v, it);
        }
        if (GRAD) {
            row_grads(r, y, whole, xy, lane, params.classes, size);
        }
    }
    if (params.write_items == 0u) {
        write_partial(lid, group, v);
    }
}
