struct Params { n: u32, groups_x: u32, groups: u32, _p: u32, }
@group(0) @binding(3) var<uniform> params: Params;
const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>;
fn reduce_wg(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
        workgroupBarrier();
    }
    return red[0];
}
