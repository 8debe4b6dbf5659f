#!/usr/bin/env python3
"""Median efficiency of several `wgpu-loss bench --json` runs, and the variant each run's tuner chose.

    python3 scripts/median_runs.py run1.jsonl run2.jsonl run3.jsonl [--target 0.5] [--markdown]

Rows are (loss, size, call) of the tuner's choice (`chosen`), in the first run's
order. Efficiency is each run's own (loss GB/s over the copy kernel's GB/s in
that run); the table gives the median over the runs, the spread, the median GPU
ms, and the variant picked in each run (one name where every run picked it).
"""

import argparse
import json
import statistics
import sys


def load(path):
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip().startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--target", type=float, default=None, help="mark efficiencies below it")
    ap.add_argument("--markdown", action="store_true")
    a = ap.parse_args()

    table = {}
    order = []
    for path in a.runs:
        for r in load(path):
            if not r.get("chosen", True) or r.get("dtype", "f32") != "f32":
                continue
            key = (r["loss"], r["size"], r["call"])
            if key not in table:
                table[key] = []
                order.append(key)
            table[key].append(r)
    if not order:
        sys.exit("error: no records")

    head = ["loss", "n", "call", "eff. (median)", "min–max", "GPU ms", "copy GB/s", "variant"]
    if a.target is not None:
        head.append(f"≥ {a.target}")
    rows = []
    for key in order:
        rs = table[key]
        eff = [r["efficiency"] for r in rs]
        variants = [r.get("variant", "-") for r in rs]
        picked = variants[0] if len(set(variants)) == 1 else " / ".join(variants)
        row = [
            key[0],
            f"2^{rs[0]['size'].bit_length() - 1}" if rs[0]["size"] & (rs[0]["size"] - 1) == 0 else str(rs[0]["size"]),
            key[2],
            f"{statistics.median(eff):.3f}",
            f"{min(eff):.3f}–{max(eff):.3f}",
            f"{statistics.median(r['gpu_ms'] for r in rs):.1f}",
            f"{statistics.median(r['copy_gbps'] for r in rs):.2f}",
            f"`{picked}`" if a.markdown else picked,
        ]
        if a.target is not None:
            row.append("yes" if statistics.median(eff) >= a.target else "no")
        if len(rs) != len(a.runs):
            row[0] += f" ({len(rs)} runs)"
        rows.append(row)

    if a.markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "|".join("---" if i < 3 or h == "variant" else "---:" for i, h in enumerate(head)) + "|")
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for row in [head] + rows:
            print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))


if __name__ == "__main__":
    main()
