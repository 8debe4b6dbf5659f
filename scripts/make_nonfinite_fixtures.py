#!/usr/bin/env python3
"""Generate tests/fixtures/nonfinite_cases.json: what the references give for
NaN and infinite values in the data, for every loss.

Same format, helpers and conventions as scripts/make_fixtures.py (float64 torch
on float32 values, "NaN"/"inf"/"-inf" strings). tests/losses/nonfinite.rs checks the
CPU twin and the GPU against every case: a NaN prediction gives a NaN item
where PyTorch gives one, an infinite logit gives what PyTorch gives.

bce is not here: torch raises for an input outside [0, 1] (NaN included), and
so does wgpu-loss (Error::OutOfUnitRange, tested in tests/losses/nonfinite.rs).

Run from the repository root (same requirements as make_fixtures.py):
    python scripts/make_nonfinite_fixtures.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_fixtures as mf  # noqa: E402
from make_fixtures import F, torch, f32, i64, p32, add_case  # noqa: E402

OUT = os.path.join(mf.ROOT, "tests", "fixtures", "nonfinite_cases.json")
NAN, INF = float("nan"), float("inf")

# Every pointwise case pairs these: NaN and ±inf in the input, in the target,
# in both (inf − inf), and finite neighbours that must stay finite.
PX = f32([NAN, INF, -INF, 1.0, INF, 0.5, 2.0, -3.0])
PY = f32([0.0, 0.0, 0.0, NAN, INF, -INF, INF, 1.0])


def pointwise():
    regress = {
        "mse": ({}, lambda t, r: F.mse_loss(t["input"], t["target"], reduction=r), "F.mse_loss"),
        "l1": ({}, lambda t, r: F.l1_loss(t["input"], t["target"], reduction=r), "F.l1_loss"),
        "huber": ({"delta": 0.5}, lambda t, r: F.huber_loss(t["input"], t["target"], reduction=r, delta=0.5),
                  "F.huber_loss(delta=0.5)"),
        "smooth_l1": ({}, lambda t, r: F.smooth_l1_loss(t["input"], t["target"], reduction=r),
                      "F.smooth_l1_loss"),
        "log_cosh": ({}, lambda t, r: mf.log_cosh_ref(t, r), mf.LC_STR),
    }
    for loss, (prm, fn, s) in regress.items():
        for red in mf.REDS:
            add_case(f"{loss}_nonfinite_{red}", loss, red, prm, {"input": PX, "target": PY},
                     lambda t, red=red, fn=fn: fn(t, red), f"{s}(x, y, reduction='{red}')")
    # A zero weight on an infinite error is 0·inf = NaN, in the sum and in Σw·l/Σw.
    w = f32([1, 1, 0, 1, 1, 0, 1, 2])
    for loss, fn in (("mse", F.mse_loss), ("l1", F.l1_loss), ("huber", F.huber_loss)):
        for red in ("none", "mean"):
            add_case(f"{loss}_nonfinite_weight_zero_{red}", loss, red, {},
                     {"input": PX, "target": PY, "weight": w},
                     lambda t, red=red, fn=fn: fn(t["input"], t["target"], weight=t["weight"], reduction=red),
                     f"{fn.__name__}(x, y, weight=w, reduction='{red}')")
    # Quantiles 0 and 1 multiply an infinite error by 0: torch.maximum gives NaN.
    qx = f32([[NAN, 0.0, 1.0], [INF, INF, INF], [-INF, -INF, -INF], [0.5, 0.5, 0.5], [1.0, 2.0, 3.0]])
    qy = f32([0.0, 0.0, 0.0, INF, NAN])
    for red in mf.REDS:
        add_case(f"quantile_nonfinite_q01_{red}", "quantile", red, {"quantiles": [0.0, 0.5, 1.0]},
                 {"input": qx, "target": qy}, lambda t, red=red: mf.pinball(t, red, [0.0, 0.5, 1.0]),
                 f"torch.maximum((q - 1) * e, q * e), q = [0, 0.5, 1], reduction '{red}'")
    add_case("quantile_nonfinite_default_none", "quantile", "none", {}, {"input": PX, "target": PY},
             lambda t: mf.pinball(t, "none", None), "torch.maximum((q - 1) * e, q * e), q = 0.5")

    lx = f32([INF, INF, -INF, -INF, NAN, 3.0, 100.0, -100.0])
    ly = f32([1.0, 0.0, 1.0, 0.0, 0.5, NAN, 1.0, 0.0])
    for red in mf.REDS:
        add_case(f"bce_with_logits_nonfinite_{red}", "bce_with_logits", red, {}, {"input": lx, "target": ly},
                 lambda t, red=red: F.binary_cross_entropy_with_logits(t["input"], t["target"], reduction=red),
                 f"F.binary_cross_entropy_with_logits(x, y, reduction='{red}')")
    pw = f32([2.0, 0.5, 3.0, 1.0, 1.0, 1.0, 0.0, INF])
    add_case("bce_with_logits_nonfinite_pos_weight_none", "bce_with_logits", "none", {},
             {"input": lx, "target": ly, "pos_weight": pw},
             lambda t: F.binary_cross_entropy_with_logits(t["input"], t["target"], pos_weight=t["pos_weight"],
                                                          reduction="none"),
             "F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction='none')")
    for gamma in (2.0, 0.0, 1.5):
        for alpha in (0.25, -1.0):
            name = f"sigmoid_focal_nonfinite_g{gamma:g}_a{alpha:g}_none".replace(".", "p").replace("-", "m")
            add_case(name, "sigmoid_focal", "none", {"alpha": alpha, "gamma": gamma}, {"input": lx, "target": ly},
                     lambda t, a=alpha, g=gamma: mf.sigmoid_focal_loss(t["input"], t["target"], alpha=p32(a),
                                                                       gamma=p32(g), reduction="none"),
                     f"torchvision.ops.sigmoid_focal_loss(x, y, alpha={alpha}, gamma={gamma}, reduction='none')")
    add_case("sigmoid_focal_nonfinite_mean", "sigmoid_focal", "mean", {}, {"input": lx, "target": ly},
             lambda t: mf.sigmoid_focal_loss(t["input"], t["target"], reduction="mean"),
             "torchvision.ops.sigmoid_focal_loss(x, y, reduction='mean')")

    kx = f32([-INF, -INF, NAN, 0.0, INF, -1.0, -2.0, -0.5])
    ky = f32([0.0, 0.5, 0.5, NAN, 0.5, INF, 0.0, 0.25])
    for red in ("none", "mean", "batchmean"):
        add_case(f"kl_div_nonfinite_{red}", "kl_div", red, {}, {"input": kx, "target": ky},
                 lambda t, red=red: F.kl_div(t["input"], t["target"], reduction=red),
                 f"F.kl_div(x, y, reduction='{red}')")
    kly = f32([-INF, 0.0, -1.0, NAN, INF, -INF, -0.5, 0.0])
    add_case("kl_div_nonfinite_log_target_none", "kl_div", "none", {"log_target": True},
             {"input": kx, "target": kly},
             lambda t: F.kl_div(t["input"], t["target"], reduction="none", log_target=True),
             "F.kl_div(x, y, reduction='none', log_target=True)")


# Rows: a NaN logit, +inf, −inf, two +inf, all −inf, a finite row.
RX = f32([[NAN, 1.0, 2.0], [INF, 1.0, 2.0], [INF, 1.0, 2.0], [-INF, 1.0, 2.0], [-INF, 1.0, 2.0],
          [INF, INF, 1.0], [-INF, -INF, -INF], [1.0, 2.0, 3.0]])
RY = i64([1, 0, 1, 0, 2, 2, 1, 1])
RW = f32([1.0, 0.0, 2.0])


def rows():
    for red in mf.REDS:
        add_case(f"cross_entropy_nonfinite_{red}", "cross_entropy", red, {}, {"input": RX, "target": RY},
                 lambda t, red=red: F.cross_entropy(t["input"], t["target"], reduction=red),
                 f"F.cross_entropy(x, y, reduction='{red}')")
    add_case("cross_entropy_nonfinite_smooth_none", "cross_entropy", "none", {"label_smoothing": 0.1},
             {"input": RX, "target": RY},
             lambda t: F.cross_entropy(t["input"], t["target"], reduction="none", label_smoothing=p32(0.1)),
             "F.cross_entropy(x, y, label_smoothing=0.1, reduction='none')")
    add_case("cross_entropy_nonfinite_weight_none", "cross_entropy", "none", {},
             {"input": RX, "target": RY, "weight": RW},
             lambda t: F.cross_entropy(t["input"], t["target"], weight=t["weight"], reduction="none"),
             "F.cross_entropy(x, y, weight=w, reduction='none')")
    add_case("cross_entropy_nonfinite_weight_smooth_none", "cross_entropy", "none", {"label_smoothing": 0.1},
             {"input": RX, "target": RY, "weight": RW},
             lambda t: F.cross_entropy(t["input"], t["target"], weight=t["weight"], reduction="none",
                                       label_smoothing=p32(0.1)),
             "F.cross_entropy(x, y, weight=w, label_smoothing=0.1, reduction='none')")
    probs = f32([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5],
                 [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [NAN, 0.5, 0.5]])
    add_case("cross_entropy_nonfinite_probs_none", "cross_entropy", "none", {}, {"input": RX, "target": probs},
             lambda t: F.cross_entropy(t["input"], t["target"], reduction="none"),
             "F.cross_entropy(x, p, reduction='none')  # probability targets")
    ignored = i64([-100, 0, 1, -100, 2, -100, -100, 1])
    add_case("cross_entropy_nonfinite_ignored_mean", "cross_entropy", "mean", {}, {"input": RX, "target": ignored},
             lambda t: F.cross_entropy(t["input"], t["target"]),
             "F.cross_entropy(x, y, reduction='mean')  # non-finite rows ignored or not")
    logp = f32([[NAN, -1.0, -2.0], [-INF, -0.5, -1.0], [-INF, -0.5, -1.0], [INF, -1.0, -2.0],
                [-1.0, -1.0, -INF], [-1.0, -2.0, -3.0]])
    ny = i64([1, 0, 1, 1, 2, 0])
    for red in mf.REDS:
        add_case(f"nll_nonfinite_{red}", "nll", red, {}, {"input": logp, "target": ny},
                 lambda t, red=red: F.nll_loss(t["input"], t["target"], reduction=red),
                 f"F.nll_loss(x, y, reduction='{red}')")
    add_case("nll_nonfinite_weight_zero_none", "nll", "none", {}, {"input": logp, "target": ny, "weight": RW},
             lambda t: F.nll_loss(t["input"], t["target"], weight=t["weight"], reduction="none"),
             "F.nll_loss(x, y, weight=w, reduction='none')  # 0 · inf = NaN")
    for gamma in (2.0, 0.0):
        for red in ("none", "mean"):
            add_case(f"softmax_focal_nonfinite_g{gamma:g}_{red}", "softmax_focal", red, {"gamma": gamma},
                     {"input": RX, "target": RY},
                     lambda t, red=red, g=gamma: mf.softmax_focal64(t, red, gamma=g),
                     f"w[y]·(1−p_t)^{gamma}·(−log p_t), reduction '{red}'")


def pairs():
    a = f32([[NAN, 1.0, 0.0], [INF, 1.0, 0.0], [INF, 1.0, 0.0], [1.0, 2.0, 3.0], [3.0, -1.0, 2.0],
             [0.0, 0.0, 0.0]])
    b = f32([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [INF, 0.0, 0.0], [-INF, 0.0, 1.0], [1.0, 1.0, 0.0],
             [1.0, 0.0, 0.0]])
    labels = f32([1, 1, -1, -1, 1, -1])
    for red in mf.REDS:
        add_case(f"cosine_embedding_nonfinite_{red}", "cosine_embedding", red, {"margin": 0.1},
                 {"input": a, "target": b, "labels": labels},
                 lambda t, red=red: F.cosine_embedding_loss(t["input"], t["target"], t["labels"], margin=p32(0.1),
                                                            reduction=red),
                 f"F.cosine_embedding_loss(x1, x2, y, margin=0.1, reduction='{red}')")
    pos = f32([[0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, INF, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0],
               [-INF, 0.0, 0.0]])
    neg = f32([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [NAN, 0.0, 0.0], [INF, 0.0, 0.0],
               [INF, 0.0, 0.0]])
    for p in (2.0, 1.0, INF):
        for swap in (False, True):
            name = f"triplet_margin_nonfinite_p{p:g}{'_swap' if swap else ''}_none"
            add_case(name, "triplet_margin", "none", {"p": p, "swap": swap} if p != INF else {"p": "inf", "swap": swap},
                     {"input": a, "positive": pos, "negative": neg},
                     lambda t, p=p, swap=swap: F.triplet_margin_loss(t["input"], t["positive"], t["negative"],
                                                                     p=p, swap=swap, reduction="none"),
                     f"F.triplet_margin_loss(a, p, n, p={p}, swap={swap}, reduction='none')")
    add_case("triplet_margin_nonfinite_mean", "triplet_margin", "mean", {},
             {"input": a, "positive": pos, "negative": neg},
             lambda t: F.triplet_margin_loss(t["input"], t["positive"], t["negative"]),
             "F.triplet_margin_loss(a, p, n, reduction='mean')")


def dice():
    def run(t, red, kw):
        per_class = mf._PerClassDice(**kw)(t["input"], t["target"])
        return {"none": per_class, "mean": mf.DiceLoss(**kw)(t["input"], t["target"]), "sum": per_class.sum()}[red]

    def dc(name, red, tensors, mode, from_logits=True):
        kw = dict(mode=mode, from_logits=from_logits, smooth=0.0, eps=p32(1e-7))
        prm = {"mode": mode} if from_logits else {"mode": mode, "from_logits": False}
        add_case(name, "dice", red, prm, tensors, lambda t: run(t, red, kw),
                 f"segmentation_models_pytorch.losses.DiceLoss(mode='{mode}', from_logits={from_logits})(x, y)")

    # (N=2, C=3, 4 pixels): a NaN logit in class 0, +inf in class 1, −inf in class 2.
    x = f32([[[0.1, NAN, 0.3, 0.2], [INF, 0.0, 1.0, -1.0], [0.5, 0.5, -INF, 0.0]],
             [[1.0, 2.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0], [3.0, -INF, 1.0, 2.0]]])
    y = i64([[0, 1, 2, 1], [0, 2, 2, 1]])
    for red in mf.REDS:
        dc(f"dice_nonfinite_multiclass_{red}", red, {"input": x, "target": y}, "multiclass")
    # Only infinities, no NaN: softmax of ±inf logits.
    xi = f32([[[INF, 0.0], [0.0, -INF]], [[-INF, 1.0], [2.0, INF]]])
    yi = i64([[0, 1], [1, 1]])
    dc("dice_nonfinite_multiclass_inf_none", "none", {"input": xi, "target": yi}, "multiclass")
    xb = f32([[INF, -INF, 0.5, NAN], [1.0, -1.0, INF, 0.0]])
    yb = f32([[1, 0, 1, 1], [0, 1, 1, 0]])
    dc("dice_nonfinite_binary_none", "none", {"input": xb, "target": yb}, "binary")
    xb2 = f32([[INF, -INF, 0.5, 2.0], [1.0, -1.0, INF, -INF]])
    dc("dice_nonfinite_binary_inf_none", "none", {"input": xb2, "target": yb}, "binary")
    xm = f32([[[INF, -INF], [NAN, 1.0]], [[0.0, 1.0], [-INF, INF]]])
    ym = f32([[[1, 0], [1, 1]], [[0, 1], [0, 1]]])
    dc("dice_nonfinite_multilabel_none", "none", {"input": xm, "target": ym}, "multilabel")
    dc("dice_nonfinite_multilabel_probs_none", "none",
       {"input": f32([[[NAN, 0.5], [1.0, 0.0]], [[0.5, 0.5], [0.0, 1.0]]]), "target": ym}, "multilabel",
       from_logits=False)


def main():
    mf.CASES.clear()
    pointwise()
    rows()
    pairs()
    dice()
    doc = {
        "generator": "scripts/make_nonfinite_fixtures.py",
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "torchvision": mf.torchvision.__version__,
                     "segmentation_models_pytorch": mf.smp.__version__, "numpy": mf.np.__version__},
        "cases": mf.CASES,
    }
    text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    text = text.replace(',{"name":', ',\n{"name":').replace('"cases":[{"name":', '"cases":[\n{"name":')
    with open(OUT, "w") as fh:
        fh.write(text + "\n")
    print(f"wrote {OUT}: {len(mf.CASES)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
