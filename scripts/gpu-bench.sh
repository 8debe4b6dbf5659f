#!/usr/bin/env bash
# The whole real-GPU benchmark in one call, on a machine with an NVIDIA GPU
# and PyTorch:
#   1. the Vulkan loader (Debian packages carried in .gl/, unpacked into /),
#      and NVIDIA's Vulkan driver if the loader finds none by itself;
#   2. the build (cargo build --release; where the machine has no Rust, a
#      wgpu-loss binary built elsewhere: target/release/wgpu-loss or $WGPU_LOSS_BIN);
#   3. wgpu-loss bench --json --variants all (and --plot): every eligible
#      kernel variant of each loss timed, the tuner's choice marked
#      ("chosen"), its cache kept in $OUT/tune.json; variants.txt lists
#      which variant the tuner picked for each loss and size;
#      then the same for f32, f16 and bf16 inputs of a few losses (half.json);
#   4. benches/torch_peer.py --json: the same losses, sizes and calls (the
#      forward and the fused value-and-gradient call) with PyTorch eager and
#      torch.compile, CUDA events, medians;
#   5. one comparison table (scripts/compare.py).
# Results go to $OUT (default bench-out/): wgpu.json, wgpu.svg, torch.json,
# compare.txt, compare.md, adapters.txt, tune.json, variants.txt, half.json.
#
# Environment: SIZES (e.g. 2^16,2^20,2^24) and LOSSES (e.g. mse,cross_entropy)
# narrow both runs, CALLS (forward, fused or both; default both) picks the
# calls of both; MODES=eager skips torch.compile; SKIP_TORCH=1 skips PyTorch.
# Without a GPU the same script runs on lavapipe and PyTorch's CPU path.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench-out}
mkdir -p "$OUT"

# 1. Vulkan loader and driver.
if compgen -G ".gl/*.deb" >/dev/null; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json

# 2. Build, or take the binary that came along.
BIN=${WGPU_LOSS_BIN:-target/release/wgpu-loss}
if command -v cargo >/dev/null; then
    cargo build --release --locked
elif [ ! -x "$BIN" ]; then
    echo "error: no cargo here and no $BIN: build it elsewhere and bring it" >&2
    exit 1
fi

"$BIN" adapters | tee "$OUT/adapters.txt" || true
used=$(grep -- "<- used" "$OUT/adapters.txt" || true)
if { [[ "$used" != *Vulkan* ]] || [[ "$used" == *Cpu* ]]; } && [ -f "$NVIDIA_ICD" ]; then
    echo "no hardware adapter found: using $NVIDIA_ICD" >&2
    export VK_DRIVER_FILES=$NVIDIA_ICD
    "$BIN" adapters | tee "$OUT/adapters.txt"
fi

# 3. Ours.
args=()
[ -n "${SIZES:-}" ] && args+=(--sizes "$SIZES")
[ -n "${LOSSES:-}" ] && args+=(--loss "$LOSSES")
args+=(--calls "${CALLS:-forward,fused}")
WGPU_LOSS_CACHE="$OUT/tune.json" "$BIN" bench --json --variants all --plot "$OUT/wgpu.svg" \
    "${args[@]}" >"$OUT/wgpu.json"
python3 - "$OUT/wgpu.json" <<'PY' | tee "$OUT/variants.txt"
import json, sys
text = open(sys.argv[1]).read().strip()
records = json.loads(text) if text.startswith("[") else [json.loads(l) for l in text.splitlines() if l.strip()]
for r in records:
    if isinstance(r, dict) and r.get("chosen"):
        print(r.get("loss"), r.get("call"), r.get("shape"), "->", r.get("variant"))
PY

# 3b. Half precision: the same losses from f16 and bf16 inputs beside f32,
# bytes counted in each dtype (kept apart from wgpu.json, which compare.py
# matches against PyTorch's f32 runs).
HALF_LOSSES=${HALF_LOSSES:-mse,bce_with_logits,cross_entropy,cosine_embedding}
WGPU_LOSS_CACHE="$OUT/tune.json" "$BIN" bench --json --dtype f32,f16,bf16 \
    --loss "$HALF_LOSSES" --sizes "${HALF_SIZES:-2^20,2^24}" >"$OUT/half.json"

# 4. PyTorch's.
if [ -z "${SKIP_TORCH:-}" ]; then
    PYTHONUNBUFFERED=1 python3 benches/torch_peer.py --json --modes "${MODES:-eager,compile}" \
        "${args[@]}" >"$OUT/torch.json"
else
    : >"$OUT/torch.json"
fi

# 5. One table.
python3 scripts/compare.py "$OUT/wgpu.json" "$OUT/torch.json" | tee "$OUT/compare.txt"
python3 scripts/compare.py --markdown "$OUT/wgpu.json" "$OUT/torch.json" >"$OUT/compare.md"
