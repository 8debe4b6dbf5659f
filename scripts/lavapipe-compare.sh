#!/usr/bin/env bash
# The lavapipe figures of BENCHMARKS.md's "Peers" and "Efficiency against the
# copy kernel": one comparison run of wgpu-loss, PyTorch's CPU eager and Burn
# (the forward and the fused value-and-gradient call, 2^20 and 2^24), then
# three bench runs of every loss (forward and fused) for the median
# efficiencies and the tuner's picks.
#
#   cargo build --release
#   # optional, Burn's columns: Device::wgpu (WGSL) from the default build,
#   # Device::vulkan (SPIR-V) from a build with the `vulkan` feature. With that
#   # feature cubecl compiles SPIR-V for every Vulkan adapter, Device::wgpu's
#   # included, so the two devices come from two binaries.
#   (cd benches/peers/burn && cargo build --release --features vulkan \
#       && cp target/release/burn-peer target/release/burn-peer-vulkan \
#       && cargo build --release)
#   scripts/lavapipe-compare.sh OUT_DIR
#
# WGPU_LOSS points at wgpu-loss (default target/release/wgpu-loss), BURN_PEER
# and BURN_PEER_VULKAN at the peer's two binaries (default
# benches/peers/burn/target/release/burn-peer and burn-peer-vulkan); a
# missing one is left out. EFFICIENCY_RUNS (default 3; 0: the comparison
# only) sets the number of bench runs, SIZES (default 2^20,2^24) the sizes.
# WAIT_LOAD (default 1.5) makes the script wait, up to 20 minutes, until the
# 1-minute load average is below it (WAIT_LOAD=0 does not wait). Each bench
# run tunes afresh (WGPU_LOSS_CACHE=off), so each run's picks are its own.
# Every step's time and load go to OUT_DIR/env.txt.
set -euo pipefail
out=${1:?usage: scripts/lavapipe-compare.sh OUT_DIR}
bin=${WGPU_LOSS:-target/release/wgpu-loss}
burn=${BURN_PEER:-benches/peers/burn/target/release/burn-peer}
burn_vulkan=${BURN_PEER_VULKAN:-benches/peers/burn/target/release/burn-peer-vulkan}
runs=${EFFICIENCY_RUNS:-3}
wait_load=${WAIT_LOAD:-1.5}
sizes=${SIZES:-2^20,2^24}
mkdir -p "$out"
export WGPU_LOSS_CACHE=off
env_line() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) $*" >> "$out/env.txt"; }
load_below() { awk -v max="$1" '{ exit !($1 < max) }' /proc/loadavg; }

env_line "start; $(nproc) cores"
if [ "$wait_load" != 0 ]; then
    for _ in $(seq 40); do
        load_below "$wait_load" && break
        sleep 30
    done
    if load_below "$wait_load"; then
        env_line "1-minute load below $wait_load"
    else
        env_line "1-minute load still at or above $wait_load after 20 minutes; running anyway"
    fi
fi
"$bin" bench --json --sizes "$sizes" --calls forward,fused > "$out/compare-wgpu.jsonl"
env_line "wgpu-loss forward,fused done"
python3 benches/torch_peer.py --json --device cpu --modes eager --sizes "$sizes" --calls forward,fused > "$out/compare-torch.jsonl"
env_line "torch forward,fused done"
# One process per Burn loss: where the driver crashes on one of Burn's
# kernels (lavapipe does on its SPIR-V cross-entropy), the others still run,
# and env.txt says which exited how.
burns=()
run_burn() {
    local label=$1 file=$2
    shift 2
    : > "$file"
    for loss in mse bce_with_logits cross_entropy; do
        if "$@" --loss "$loss" --json --sizes "$sizes" --calls forward,fused >> "$file"; then
            env_line "burn $label $loss forward,fused done"
        else
            env_line "burn $label $loss forward,fused: exit $?"
        fi
    done
    [ -s "$file" ] && burns+=("$file")
}
if [ -x "$burn" ]; then
    run_burn wgpu "$out/compare-burn.jsonl" "$burn"
fi
if [ -x "$burn_vulkan" ]; then
    run_burn vulkan "$out/compare-burn-vulkan.jsonl" "$burn_vulkan" --vulkan
    if "$burn_vulkan" --vulkan --count --sizes 2^16,2^18,2^20,2^24 > "$out/burn-vulkan-count.jsonl"; then
        env_line "burn vulkan count done"
    else
        env_line "burn vulkan count: exit $?"
    fi
fi
python3 scripts/compare.py "$out/compare-wgpu.jsonl" "$out/compare-torch.jsonl" ${burns[@]+"${burns[@]}"} --markdown > "$out/compare.md"
for i in $(seq "$runs"); do
    "$bin" bench --json --sizes "$sizes" --calls forward,fused > "$out/eff-run$i.jsonl"
    env_line "bench run $i done"
done
if [ "$runs" -gt 0 ]; then
    files=()
    for i in $(seq "$runs"); do files+=("$out/eff-run$i.jsonl"); done
    python3 scripts/median_runs.py "${files[@]}" --target 0.5 --markdown > "$out/efficiency.md"
fi
