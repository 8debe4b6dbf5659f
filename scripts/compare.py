#!/usr/bin/env python3
"""Joins `wgpu-loss bench --json` and `benches/torch_peer.py --json` into one table.

    python3 scripts/compare.py wgpu.json torch.json [burn.json ...] [--markdown]

Each file holds one JSON record per line. Rows are matched on (loss, n, call),
where call is "forward" (the value) or "fused" (the value and the gradients;
a record without "call" is a forward one). When any file holds fused records
the table gets a `call` column; with forward records only it is the
forward table it always was.
Further files, the output of benches/peers/burn (`burn-peer --json`, one file
per device: Device::wgpu and Device::vulkan), add for each file Burn's time,
our speedup over it and the relative error of Burn's value against the
float64 reference the peer computes (and, for fused calls, of its gradient:
max |Burn - float64| / max |float64|). With one Burn file its columns are
named "burn ..."; with several, "burn <api> ..." after the record's api.
Speedups are the peer's time over ours: above 1, wgpu-loss is faster. Ours is
the call's GPU time (timestamps) with the inputs on the device;
PyTorch's is the same call timed with CUDA events (or wall clock on a CPU).
GB/s count the bytes wgpu-loss counts for the call, for both.
"""

import argparse
import json
import sys


def load(path):
    records = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            line = line.strip()
            if not line or not line.startswith("{"):
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                sys.exit(f"error: {path}:{i}: {e}")
    return records


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def call_of(r):
    return r.get("call", "forward")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wgpu", help="wgpu-loss bench --json output")
    ap.add_argument("torch", help="benches/torch_peer.py --json output")
    ap.add_argument("burn", nargs="*", help="benches/peers/burn --json output, one file per device")
    ap.add_argument("--markdown", action="store_true", help="a Markdown table")
    a = ap.parse_args()

    # Of `bench --variants all`, the tuner's choice ("chosen"), which is what
    # a caller gets.
    ours = [r for r in load(a.wgpu) if r.get("chosen", True)]
    if not ours:
        sys.exit(f"error: no records in {a.wgpu}")
    torch = {}
    for r in load(a.torch):
        torch[(r["loss"], r["n"], call_of(r), r["mode"])] = r
    burns = []
    for path in a.burn:
        recs = load(path)
        if not recs:
            sys.exit(f"error: no records in {path}")
        burns.append({(r["loss"], r["n"], call_of(r)): r for r in recs})
    fused = any(call_of(r) == "fused" for r in ours) or any(k[2] == "fused" for k in torch)
    fused = fused or any(k[2] == "fused" for b in burns for k in b)

    cols = [("loss", "<16"), ("n", ">9")]
    if fused:
        cols += [("call", "<7")]
    cols += [
        ("ours ms", ">9"), ("GB/s", ">8"), ("eff.", ">5"),
        ("disp", ">4"), ("eager ms", ">9"), ("compile ms", ">10"), ("vs eager", ">8"),
        ("vs compile", ">10"), ("rt ours", ">7"), ("rt eager", ">8"),
    ]
    labels = []
    for b in burns:
        api = next(iter(b.values())).get("api", "burn")
        label = "burn" if len(burns) == 1 else f"burn {api}"
        labels.append(label)
        cols += [(f"{label} ms", ">9"), (f"vs {label}", ">7"), (f"{label} rel err", ">12")]
        if fused:
            cols += [(f"{label} grad err", ">13")]
    # Ours in their order; then what only a peer ran (a loss we skipped).
    by_key = {(r["loss"], r["n"], call_of(r)): r for r in ours}
    keys = list(by_key)
    for loss, n, call, _ in torch:
        if (loss, n, call) not in keys:
            keys.append((loss, n, call))
    for b in burns:
        for key in b:
            if key not in keys:
                keys.append(key)
    rows = []
    for key in keys:
        r = by_key.get(key)
        e = torch.get(key + ("eager",))
        c = torch.get(key + ("compile",))
        ms = r and r["gpu_ms"]
        row = [key[0], str(key[1])]
        if fused:
            row += [key[2]]
        row += [
            fmt(ms, ".4f"),
            fmt(r and r["gbps"], ".2f"),
            fmt(r and r["efficiency"], ".2f"),
            str(r["dispatches"]) if r else "-",
            fmt(e and e["ms"], ".4f"),
            fmt(c and c["ms"], ".4f"),
            fmt(e and ms and e["ms"] / ms, ".2f"),
            fmt(c and ms and c["ms"] / ms, ".2f"),
            fmt(r and r["roundtrip_ms"], ".3f"),
            fmt(e and e["roundtrip_ms"], ".3f"),
        ]
        for burn in burns:
            b = burn.get(key)
            # The worse of the first call's value and the last timed call's.
            err = b and max(b["rel_err"], b.get("rel_err_last", b["rel_err"]))
            row += [fmt(b and b["ms"], ".4f"), fmt(b and ms and b["ms"] / ms, ".2f"), fmt(err, ".1e")]
            if fused:
                g = b.get("grad_rel_err") if b else None
                if g is not None:
                    g = max(g, b.get("grad_rel_err_last", g))
                row += [fmt(g, ".1e")]
        rows.append(row)

    first = ours[0]
    peer = next(iter(torch.values()), None)
    print(f"wgpu-loss: {first['adapter']} ({first['device_type']}), {first['timing']}, reduction {first['reduction']}")
    if peer:
        print(f"PyTorch {peer['torch']} on {peer['device']}, timing {peer['timing']}")
    else:
        print("PyTorch: no records")
    if len(burns) == 1 and not fused:
        b = next(iter(burns[0].values()))
        print(f"Burn {b['burn']} ({b['api']}) on {b['device']}, timing {b['timing']}; "
              "vs burn: Burn's time over ours; burn rel err: |Burn - float64| / |float64|")
    elif burns:
        for label, burn in zip(labels, burns):
            b = next(iter(burn.values()))
            print(f"{label}: Burn {b['burn']} ({b['api']}) on {b['device']}, timing {b['timing']}")
        print("vs burn: Burn's time over ours; rel err: |Burn - float64| / |float64| of the value"
              + ("; grad err: max |Burn - float64| / max |float64| of the gradient" if fused else ""))
    print("vs eager / vs compile: PyTorch's time over ours (above 1: wgpu-loss is faster); "
          "rt: blocking call on 1000 elements, scalar read back, ms")
    print()
    if a.markdown:
        print("| " + " | ".join(c for c, _ in cols) + " |")
        print("|" + "|".join("---" if s.startswith("<") else "---:" for _, s in cols) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        print(" ".join(format(c, s) for c, s in cols))
        for row in rows:
            print(" ".join(format(v, s) for v, (_, s) in zip(row, cols)))


if __name__ == "__main__":
    main()
