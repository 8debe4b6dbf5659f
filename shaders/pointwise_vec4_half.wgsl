// `point-vec4`'s reads of half-precision tensors: four f16 or bf16 values
// (the `DTYPE_<binding>` override of each binding says which) in one 8-byte
// load, so that neighbouring invocations still read neighbouring vectors.
// The host uses it where every tensor the call reads is f16 or bf16.

@group(0) @binding(0) var<storage, read> input: array<vec2<u32>>;
@group(0) @binding(1) var<storage, read> targets: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> weight: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> aux: array<vec2<u32>>;

override DTYPE_0: u32 = DT_F16;
override DTYPE_1: u32 = DT_F16;
override DTYPE_2: u32 = DT_F16;
override DTYPE_3: u32 = DT_F16;

fn halves4(w: vec2<u32>, dt: u32) -> vec4<f32> {
    return vec4(element(w.x, 0u, dt), element(w.x, 1u, dt), element(w.y, 0u, dt), element(w.y, 1u, dt));
}

fn ld4_input(j: u32) -> vec4<f32> { return halves4(input[j], DTYPE_0); }
fn ld4_target(j: u32) -> vec4<f32> { return halves4(targets[j], DTYPE_1); }
fn ld4_weight(j: u32) -> vec4<f32> { return halves4(weight[j], DTYPE_2); }
fn ld4_aux(j: u32) -> vec4<f32> { return halves4(aux[j], DTYPE_3); }
