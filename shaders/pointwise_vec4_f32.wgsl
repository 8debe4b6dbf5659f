// `point-vec4`'s reads of f32 tensors: one 16-byte vector per load.

@group(0) @binding(0) var<storage, read> input: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> targets: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> weight: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> aux: array<vec4<f32>>;

fn ld4_input(j: u32) -> vec4<f32> { return input[j]; }
fn ld4_target(j: u32) -> vec4<f32> { return targets[j]; }
fn ld4_weight(j: u32) -> vec4<f32> { return weight[j]; }
fn ld4_aux(j: u32) -> vec4<f32> { return aux[j]; }
