#!/usr/bin/env bash
# The lavapipe figures of BENCHMARKS.md's "Peers" and "Efficiency against the
# copy kernel": one comparison run of wgpu-loss, PyTorch's CPU eager and Burn
# (forward, 2^20 and 2^24), then three bench runs of every loss (forward and
# fused) for the median efficiencies and the tuner's picks.
#
#   cargo build --release
#   (cd benches/peers/burn && cargo build --release)   # optional: Burn's column
#   scripts/lavapipe-compare.sh OUT_DIR
#
# BURN_PEER points at the peer's binary (default benches/peers/burn/target/release/burn-peer).
# Each bench run tunes afresh (WGPU_LOSS_CACHE=off), so each run's picks are its own.
set -euo pipefail
out=${1:?usage: scripts/lavapipe-compare.sh OUT_DIR}
bin=${WGPU_LOSS:-target/release/wgpu-loss}
burn=${BURN_PEER:-benches/peers/burn/target/release/burn-peer}
sizes=2^20,2^24
mkdir -p "$out"
export WGPU_LOSS_CACHE=off
env_line() { echo "$(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg) $*" >> "$out/env.txt"; }

env_line "start; $(nproc) cores"
"$bin" bench --json --sizes "$sizes" --calls forward > "$out/compare-wgpu.jsonl"
env_line "wgpu-loss forward done"
python3 benches/torch_peer.py --json --device cpu --modes eager --sizes "$sizes" > "$out/compare-torch.jsonl"
env_line "torch done"
if [ -x "$burn" ]; then
    "$burn" --json --sizes "$sizes" > "$out/compare-burn.jsonl"
    env_line "burn done"
    python3 scripts/compare.py "$out/compare-wgpu.jsonl" "$out/compare-torch.jsonl" "$out/compare-burn.jsonl" --markdown > "$out/compare.md"
else
    python3 scripts/compare.py "$out/compare-wgpu.jsonl" "$out/compare-torch.jsonl" --markdown > "$out/compare.md"
fi
for i in 1 2 3; do
    "$bin" bench --json --sizes "$sizes" --calls forward,fused > "$out/eff-run$i.jsonl"
    env_line "bench run $i done"
done
python3 scripts/median_runs.py "$out"/eff-run{1,2,3}.jsonl --target 0.5 --markdown > "$out/efficiency.md"
