#!/usr/bin/env python3
"""Generate tests/fixtures/torch_cases.json: reference values for every loss.

The Rust tests compare wgpu-loss against these numbers. The semantics are those
of docs/semantics.md; the worked numbers given there are asserted here (check=):

  mse, l1, huber, smooth_l1, bce, bce_with_logits, cross_entropy, nll, kl_div,
  poisson_nll, gaussian_nll,
  cosine_embedding, triplet_margin      -> torch.nn.functional
  sigmoid_focal                         -> torchvision.ops.sigmoid_focal_loss
  softmax_focal                         -> CE-consistent formula in torch ops
                                           (cross-checked against kornia.losses.focal_loss)
  dice                                  -> segmentation_models_pytorch.losses.DiceLoss
  log_cosh, quantile                    -> formulas in float64 torch ops

How the numbers are made:
  * every float input is drawn (or written) in float32 and stored as the exact
    f32 value (Python float of the f32, full repr);
  * the expected values and gradients are computed in float64 torch from those
    same values (autograd for the gradients);
  * float parameters (label_smoothing, margin, alpha, quantiles, ...) are used
    as their f32-rounded value, because the Rust side holds them as f32; the JSON
    shows the short decimal (0.1), which parses to that same f32;
  * reduction 'none': expected.value is the sum of the per-item values and the
    gradients are those of that sum;
  * non-finite numbers are written as the strings "NaN", "inf", "-inf";
  * half-precision cases (Half, h16, bh16): a float tensor drawn in f32 is
    rounded to float16 / bfloat16 by torch and stored, with that "dtype", as
    its exact half values; float64 torch computes from those values upcast, so
    expected values and gradients are those of the half values. Each tensor
    has its own dtype (an f32 weight may sit next to bf16 logits).

Each case draws from its own RNG seeded by crc32(case name), so adding a case
does not change the others.

Install (CPU; PyPI only), then run from the repository root:
    pip install -r scripts/requirements-fixtures.txt
    python scripts/make_fixtures.py
"""

import json
import math
import os
import sys
import warnings
import zlib

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import sigmoid_focal_loss
import kornia
from kornia.losses import focal_loss as kornia_focal_loss
import segmentation_models_pytorch as smp
from segmentation_models_pytorch.losses import DiceLoss

warnings.filterwarnings("ignore", message="reduction: 'mean' divides the total loss")
torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "torch_cases.json")

D64 = torch.float64
CASES = []
NAMES = set()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def f32(a):
    """Round to float32 (values to store and feed)."""
    return np.asarray(a, dtype=np.float32)


def i64(a):
    return np.asarray(a, dtype=np.int64)


def p32(v):
    """A float parameter as the f32 the Rust side will hold (as a Python float)."""
    return float(np.float32(v))


def randn(r, *shape, scale=1.0):
    return f32(r.standard_normal(shape) * scale)


def uniform(r, lo, hi, *shape):
    return f32(r.uniform(lo, hi, shape))


HALVES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def _round_half(a, dtype):
    """float32 values rounded to the half dtype and back (exact: every half value is an f32)."""
    t = torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32)))
    return t.to(HALVES[dtype]).to(torch.float32).numpy()


class Half:
    """A float tensor held in a half dtype: its values (exact half values, as float32) and the dtype's name.

    Values beyond the dtype's range would become infinities; that is refused unless `inf` says it is meant.
    """

    def __init__(self, a, dtype, inf=False):
        a = np.asarray(a, dtype=np.float32)
        self.dtype = dtype
        self.values = _round_half(a, dtype)
        if not inf:
            grew = np.isinf(self.values) & np.isfinite(a)
            assert not grew.any(), f"{dtype}: {a[grew]} is beyond its range"

    @property
    def shape(self):
        return self.values.shape


def h16(a, inf=False):
    return Half(a, "float16", inf)


def bh16(a, inf=False):
    return Half(a, "bfloat16", inf)


def is_float(a):
    return isinstance(a, Half) or np.asarray(a).dtype == np.float32


def softmax32(a, axis):
    """A probability tensor in f32 (computed in f64, rounded once)."""
    a = np.asarray(a, dtype=np.float64)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    return f32(e / e.sum(axis=axis, keepdims=True))


def log_softmax32(a, axis):
    a = np.asarray(a, dtype=np.float64)
    m = a.max(axis=axis, keepdims=True)
    return f32(a - m - np.log(np.exp(a - m).sum(axis=axis, keepdims=True)))


def num(x):
    if isinstance(x, torch.Tensor):
        x = x.detach()
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def flat(t):
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    a = np.asarray(t)
    if a.dtype == np.int64:
        return [int(v) for v in a.reshape(-1)]
    return [num(v) for v in a.reshape(-1)]


def add_case(name, loss, reduction, params, tensors, fn, torch_str,
             grad_of=("input",), check=None):
    """Evaluate `fn` on float64 copies of `tensors` and record the case.

    tensors: name -> numpy array (float32 or int64), in JSON order.
    fn(t): t = dict of float64/int64 torch tensors -> loss output for `reduction`.
    check: optional dict with worked numbers: value / none / grads{name: list}.
    """
    assert name not in NAMES, name
    NAMES.add(name)
    t = {}
    jt = {}
    for k, a in tensors.items():
        dtype = "float32"
        if isinstance(a, Half):
            dtype = a.dtype
            a = a.values
            back = _round_half(a, dtype)
            assert np.array_equal(back, a, equal_nan=True), f"{name}: {k} holds values that are not {dtype}"
        a = np.asarray(a)
        if a.dtype == np.float32:
            # A half tensor's values are upcast exactly: float64 torch computes from the half values.
            tt = torch.tensor(a.astype(np.float64), dtype=D64)
            if k in grad_of:
                tt.requires_grad_(True)
            jt[k] = {"shape": list(a.shape), "dtype": dtype, "data": flat(a)}
        elif a.dtype == np.int64:
            tt = torch.tensor(a, dtype=torch.int64)
            jt[k] = {"shape": list(a.shape), "dtype": "int64", "data": flat(a)}
        else:
            raise TypeError(f"{name}: tensor {k} has dtype {a.dtype}")
        t[k] = tt
    halves = [f"{k} {a.dtype}" for k, a in tensors.items() if isinstance(a, Half)]
    if halves:
        torch_str += "  # " + ", ".join(halves) + ": float64 torch on the upcast half values"
    out = fn(t)
    if reduction == "none":
        value = out.sum()
    else:
        assert out.dim() == 0, (name, out.shape)
        value = out
    gts = [t[k] for k in grad_of]
    gs = torch.autograd.grad(value, gts, allow_unused=True)
    grads = {}
    for k, g, x in zip(grad_of, gs, gts):
        if g is None:
            g = torch.zeros_like(x)
        grads[k] = g
    expected = {"value": num(value)}
    if reduction == "none":
        expected["none_shape"] = list(out.shape)
        expected["none"] = flat(out)
    if check is not None:
        tol = check.get("tol", 1e-6)
        if "value" in check:
            _close(name, "value", value.item(), check["value"], tol)
        if "none" in check:
            got = out.detach().reshape(-1).tolist()
            assert len(got) == len(check["none"]), name
            for a, b in zip(got, check["none"]):
                _close(name, "none", a, b, tol)
        for k, want in check.get("grads", {}).items():
            got = grads[k].reshape(-1).tolist()
            assert len(got) == len(want), (name, k)
            for a, b in zip(got, want):
                _close(name, "grad " + k, a, b, tol)
    CASES.append({
        "name": name,
        "loss": loss,
        "reduction": reduction,
        "params": params,
        "tensors": jt,
        "expected": expected,
        "grads": {k: flat(g) for k, g in grads.items()},
        "torch": torch_str,
    })
    return value, out, grads


def _close(name, what, got, want, tol):
    if isinstance(want, float) and math.isnan(want):
        ok = math.isnan(got)
    elif isinstance(want, float) and math.isinf(want):
        ok = got == want
    else:
        ok = abs(got - want) <= tol
    if not ok:
        raise AssertionError(f"{name}: {what} = {got!r}, worked example says {want!r}")


def assert_close(name, a, b, tol=1e-12):
    a = torch.as_tensor(a, dtype=D64)
    b = torch.as_tensor(b, dtype=D64)
    if not torch.allclose(a, b, rtol=tol, atol=tol, equal_nan=True):
        raise AssertionError(f"{name}: {a} != {b}")


REDS = ("none", "mean", "sum")


# --------------------------------------------------------------------------
# mse / l1 / huber / smooth_l1
# --------------------------------------------------------------------------

WX = f32([1, 2, 3])
WY = f32([1.5, 2, 5])
WW = f32([2, 1, 1])


def regression():
    fns = {
        "mse": ("F.mse_loss", lambda t, r, **kw: F.mse_loss(t["input"], t["target"], reduction=r, weight=t.get("weight"))),
        "l1": ("F.l1_loss", lambda t, r, **kw: F.l1_loss(t["input"], t["target"], reduction=r, weight=t.get("weight"))),
    }
    for loss, (fname, f) in fns.items():
        for red in REDS:
            n = f"{loss}_rand_{red}"
            r = rng(n)
            add_case(n, loss, red, {}, {"input": randn(r, 3, 4), "target": randn(r, 3, 4)},
                     lambda t, red=red, f=f: f(t, red), f"{fname}(x, y, reduction='{red}')")
        n = f"{loss}_single_element_mean"
        r = rng(n)
        add_case(n, loss, "mean", {}, {"input": randn(r, 1), "target": randn(r, 1)},
                 lambda t, f=f: f(t, "mean"), f"{fname}(x, y, reduction='mean')")
        n = f"{loss}_4d_sum"
        r = rng(n)
        add_case(n, loss, "sum", {}, {"input": randn(r, 2, 3, 2, 2), "target": randn(r, 2, 3, 2, 2)},
                 lambda t, f=f: f(t, "sum"), f"{fname}(x, y, reduction='sum')")
        # weight with zeros
        for red in REDS:
            n = f"{loss}_weight_zeros_{red}"
            r = rng(n)
            w = uniform(r, 0.1, 2.0, 2, 5)
            w[0, 1] = 0
            w[1, 3] = 0
            w[1, 4] = 0
            add_case(n, loss, red, {}, {"input": randn(r, 2, 5), "target": randn(r, 2, 5), "weight": w},
                     lambda t, red=red, f=f: f(t, red), f"{fname}(x, y, weight=w, reduction='{red}')")
    # worked examples (docs/semantics.md: mse, l1, huber)
    add_case("mse_worked_mean", "mse", "mean", {}, {"input": WX, "target": WY},
             lambda t: F.mse_loss(t["input"], t["target"]), "F.mse_loss(x, y, reduction='mean')",
             check={"value": 1.4166667, "grads": {"input": [-1 / 3, 0, -4 / 3]}})
    add_case("mse_worked_sum", "mse", "sum", {}, {"input": WX, "target": WY},
             lambda t: F.mse_loss(t["input"], t["target"], reduction="sum"), "F.mse_loss(x, y, reduction='sum')",
             check={"value": 4.25})
    add_case("mse_worked_weight_mean", "mse", "mean", {}, {"input": WX, "target": WY, "weight": WW},
             lambda t: F.mse_loss(t["input"], t["target"], weight=t["weight"]),
             "F.mse_loss(x, y, weight=w, reduction='mean')", check={"value": 1.125})
    add_case("l1_worked_mean", "l1", "mean", {}, {"input": WX, "target": WY},
             lambda t: F.l1_loss(t["input"], t["target"]), "F.l1_loss(x, y, reduction='mean')",
             check={"value": 0.8333333, "grads": {"input": [-1 / 3, 0, -1 / 3]}})
    add_case("l1_worked_weight_mean", "l1", "mean", {}, {"input": WX, "target": WY, "weight": WW},
             lambda t: F.l1_loss(t["input"], t["target"], weight=t["weight"]),
             "F.l1_loss(x, y, weight=w, reduction='mean')", check={"value": 0.75})

    # huber
    for red in REDS:
        n = f"huber_rand_{red}"
        r = rng(n)
        add_case(n, "huber", red, {}, {"input": randn(r, 3, 4, scale=1.5), "target": randn(r, 3, 4)},
                 lambda t, red=red: F.huber_loss(t["input"], t["target"], reduction=red),
                 f"F.huber_loss(x, y, delta=1.0, reduction='{red}')")
    add_case("huber_worked_mean", "huber", "mean", {}, {"input": WX, "target": WY},
             lambda t: F.huber_loss(t["input"], t["target"]), "F.huber_loss(x, y, delta=1.0, reduction='mean')",
             check={"value": 0.5416667, "grads": {"input": [-0.5 / 3, 0, -1 / 3]}})
    add_case("huber_worked_delta05_none", "huber", "none", {"delta": 0.5}, {"input": WX, "target": WY},
             lambda t: F.huber_loss(t["input"], t["target"], reduction="none", delta=p32(0.5)),
             "F.huber_loss(x, y, delta=0.5, reduction='none')",
             check={"none": [0.125, 0, 0.875], "grads": {"input": [-0.5, 0, -0.5]}})
    add_case("huber_worked_weight_mean", "huber", "mean", {}, {"input": WX, "target": WY, "weight": WW},
             lambda t: F.huber_loss(t["input"], t["target"], weight=t["weight"]),
             "F.huber_loss(x, y, delta=1.0, weight=w, reduction='mean')  # (w*l).mean()",
             check={"value": 0.5833333})
    for red in ("none", "sum"):
        n = f"huber_weight_delta2_{red}"
        r = rng(n)
        add_case(n, "huber", red, {"delta": 2.0},
                 {"input": randn(r, 2, 6, scale=2.0), "target": randn(r, 2, 6), "weight": uniform(r, 0, 2, 2, 6)},
                 lambda t, red=red: F.huber_loss(t["input"], t["target"], reduction=red, delta=2.0, weight=t["weight"]),
                 f"F.huber_loss(x, y, delta=2.0, weight=w, reduction='{red}')")
    # boundaries: x - y exactly +-delta
    bx = f32([1.25, -0.75, 0.25, 3.0, 2.5, 0.0])
    by = f32([0.75, -0.25, 0.25, 2.0, 3.0, -0.5])  # d = .5, -.5, 0, 1, -.5, .5
    add_case("huber_boundary_delta05_none", "huber", "none", {"delta": 0.5}, {"input": bx, "target": by},
             lambda t: F.huber_loss(t["input"], t["target"], reduction="none", delta=0.5),
             "F.huber_loss(x, y, delta=0.5, reduction='none')",
             check={"grads": {"input": [0.5, -0.5, 0, 0.5, -0.5, 0.5]}})
    add_case("huber_boundary_delta1_mean", "huber", "mean", {},
             {"input": f32([2.0, -1.0, 0.5]), "target": f32([1.0, 0.0, 0.5])},
             lambda t: F.huber_loss(t["input"], t["target"]), "F.huber_loss(x, y, delta=1.0, reduction='mean')",
             check={"value": 1 / 3, "grads": {"input": [1 / 3, -1 / 3, 0]}})

    # smooth_l1
    for red in REDS:
        n = f"smooth_l1_rand_{red}"
        r = rng(n)
        add_case(n, "smooth_l1", red, {}, {"input": randn(r, 3, 4, scale=1.5), "target": randn(r, 3, 4)},
                 lambda t, red=red: F.smooth_l1_loss(t["input"], t["target"], reduction=red),
                 f"F.smooth_l1_loss(x, y, beta=1.0, reduction='{red}')")
    add_case("smooth_l1_worked_beta05_none", "smooth_l1", "none", {"beta": 0.5}, {"input": WX, "target": WY},
             lambda t: F.smooth_l1_loss(t["input"], t["target"], reduction="none", beta=0.5),
             "F.smooth_l1_loss(x, y, beta=0.5, reduction='none')",
             check={"none": [0.25, 0, 1.75], "grads": {"input": [-1, 0, -1]}})
    add_case("smooth_l1_boundary_beta1_none", "smooth_l1", "none", {},
             {"input": f32([2.0, -1.0, 0.5, 0.0]), "target": f32([1.0, 0.0, 0.5, 0.25])},
             lambda t: F.smooth_l1_loss(t["input"], t["target"], reduction="none"),
             "F.smooth_l1_loss(x, y, beta=1.0, reduction='none')",
             check={"none": [0.5, 0.5, 0, 0.03125], "grads": {"input": [1, -1, 0, -0.25]}})
    n = "smooth_l1_beta0_mean"
    r = rng(n)
    x, y = randn(r, 2, 5), randn(r, 2, 5)
    y[0, 2] = x[0, 2]
    v, _, g = add_case(n, "smooth_l1", "mean", {"beta": 0.0}, {"input": x, "target": y},
                       lambda t: F.smooth_l1_loss(t["input"], t["target"], beta=0.0),
                       "F.smooth_l1_loss(x, y, beta=0.0, reduction='mean')  # == F.l1_loss")
    xt = torch.tensor(x, dtype=D64, requires_grad=True)
    l1 = F.l1_loss(xt, torch.tensor(y, dtype=D64))
    assert_close(n, v, l1)
    assert_close(n, g["input"], torch.autograd.grad(l1, xt)[0])

    # half precision (drawn in f32, rounded to the half dtype, float64 torch on the half values)
    hb = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss, "smooth_l1": F.smooth_l1_loss}
    for loss, fn in hb.items():
        fname = "F." + fn.__name__
        n = f"{loss}_f16_rand_none"
        r = rng(n)
        add_case(n, loss, "none", {}, {"input": h16(randn(r, 3, 5, scale=2)), "target": h16(randn(r, 3, 5))},
                 lambda t, fn=fn: fn(t["input"], t["target"], reduction="none"), f"{fname}(x, y, reduction='none')")
        n = f"{loss}_bf16_rand_mean"
        r = rng(n)
        add_case(n, loss, "mean", {}, {"input": bh16(randn(r, 4, 7, scale=2)), "target": bh16(randn(r, 4, 7))},
                 lambda t, fn=fn: fn(t["input"], t["target"]), f"{fname}(x, y, reduction='mean')")
        # per-tensor dtypes: a bf16 input, an f16 target, an f32 weight (smooth_l1 has none)
        n = f"{loss}_bf16_f16_weight_f32_sum" if loss != "smooth_l1" else f"{loss}_bf16_f16_sum"
        r = rng(n)
        d = {"input": bh16(randn(r, 2, 6, scale=2)), "target": h16(randn(r, 2, 6))}
        if loss != "smooth_l1":
            d["weight"] = uniform(r, 0, 2, 2, 6)
        add_case(n, loss, "sum", {}, d,
                 lambda t, fn=fn: fn(t["input"], t["target"], reduction="sum",
                                     **({"weight": t["weight"]} if "weight" in t else {})),
                 f"{fname}(x, y{', weight=w' if 'weight' in d else ''}, reduction='sum')")
    # f16's range: its largest values (65504; differences of up to 131008) and its subnormals
    # (2**-24 .. 1023 * 2**-24), whose signs decide the l1 gradients
    sub = 2.0 ** -24
    mx = h16([65504, -65504, 60000, 65472, sub, -3 * sub, 1023 * sub, 2.0 ** -14, 0, 7 * sub])
    my = h16([65472, 65504, -32768, 65504, 0, sub, sub, -sub, 5 * sub, 7 * sub])
    for loss in ("mse", "l1", "huber", "smooth_l1"):
        fn = hb[loss]
        add_case(f"{loss}_f16_max_subnormal_none", loss, "none", {}, {"input": mx, "target": my},
                 lambda t, fn=fn: fn(t["input"], t["target"], reduction="none"),
                 f"F.{fn.__name__}(x, y, reduction='none')")
    # more elements than a workgroup, an odd count (half values pack two to a 32-bit word)
    n = "mse_f16_1001_sum"
    r = rng(n)
    add_case(n, "mse", "sum", {}, {"input": h16(randn(r, 7, 143, scale=2)), "target": h16(randn(r, 7, 143))},
             lambda t: F.mse_loss(t["input"], t["target"], reduction="sum"), "F.mse_loss(x, y, reduction='sum')")
    n = "l1_f16_subnormal_mean"
    r = rng(n)
    add_case(n, "l1", "mean", {}, {"input": h16(r.integers(-1023, 1024, (3, 4)) * sub),
                                   "target": h16(r.integers(-1023, 1024, (3, 4)) * sub)},
             lambda t: F.l1_loss(t["input"], t["target"]), "F.l1_loss(x, y, reduction='mean')  # f16 subnormals")
    n = "smooth_l1_f16_subnormal_beta0_sum"
    r = rng(n)
    add_case(n, "smooth_l1", "sum", {"beta": 0.0}, {"input": h16(r.integers(-1023, 1024, 8) * sub),
                                                    "target": h16(r.integers(-1023, 1024, 8) * sub)},
             lambda t: F.smooth_l1_loss(t["input"], t["target"], beta=0.0, reduction="sum"),
             "F.smooth_l1_loss(x, y, beta=0.0, reduction='sum')  # f16 subnormals")
    # bf16's range: magnitudes far beyond f16's, still finite in f32
    bx = bh16([1e30, -1e30, 3e20, -7e4, 1e4, 2.5, -1e-30, 1e-38])
    by = bh16([-1e30, 1e29, 3e20, 7e4, -1e4, 2.5, 1e-30, 0])
    add_case("l1_bf16_large_mean", "l1", "mean", {}, {"input": bx, "target": by},
             lambda t: F.l1_loss(t["input"], t["target"]), "F.l1_loss(x, y, reduction='mean')")
    add_case("huber_bf16_large_delta2_none", "huber", "none", {"delta": 2.0},
             {"input": bh16([1e4, -3e5, 6e4, 1.5, -1.0, 70000]), "target": bh16([-1e4, 0, 6e4, 0.5, 2.5, 65536])},
             lambda t: F.huber_loss(t["input"], t["target"], delta=2.0, reduction="none"),
             "F.huber_loss(x, y, delta=2.0, reduction='none')")


# --------------------------------------------------------------------------
# log_cosh / quantile
# --------------------------------------------------------------------------

def log_cosh64(e):
    """log(cosh(e)) in float64: stable form, Taylor series below |e| < 1e-2."""
    a = e.abs()
    big = a + torch.log1p(torch.exp(-2 * a)) - math.log(2.0)
    e2 = e * e
    small = e2 * (0.5 + e2 * (-1 / 12 + e2 * (1 / 45 + e2 * (-17 / 2520))))
    return torch.where(a < 1e-2, small, big)


def log_cosh_ref(t, red):
    l = log_cosh64(t["input"] - t["target"])
    return {"none": l, "mean": l.mean(), "sum": l.sum()}[red]


LC_STR = "e = x - y; l = |e| + log1p(exp(-2|e|)) - log 2 (Taylor series for |e| < 1e-2), float64"


def log_cosh_cases():
    for red in REDS:
        n = f"log_cosh_rand_{red}"
        r = rng(n)
        add_case(n, "log_cosh", red, {}, {"input": randn(r, 3, 4, scale=2), "target": randn(r, 3, 4)},
                 lambda t, red=red: log_cosh_ref(t, red), f"{LC_STR}; reduction '{red}'")
    add_case("log_cosh_worked_none", "log_cosh", "none", {},
             {"input": f32([0, 1, -3, 50, -1000]), "target": f32([0, 0, 0, 0, 0])},
             lambda t: log_cosh_ref(t, "none"), f"{LC_STR}; reduction 'none'",
             check={"none": [0, 0.4337808, 2.3093285, 49.3068528, 999.3068528],
                    "grads": {"input": [0, 0.7615942, -0.9950548, 1, -1]}})
    add_case("log_cosh_worked_row_mean", "log_cosh", "mean", {},
             {"input": f32([0, 1, -3]), "target": f32([0, 0, 0])},
             lambda t: log_cosh_ref(t, "mean"), f"{LC_STR}; mean", check={"value": 0.9143698})
    # tiny errors, where the f32 stable form cancels: exact values ~ e^2/2
    x = f32([1e-6, -1e-4, 0.5 + 1e-3, 3e-3, -0.009, 0.011, 2e-2, 0.0])
    y = f32([0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, -1e-5])
    add_case("log_cosh_tiny_errors_none", "log_cosh", "none", {}, {"input": x, "target": y},
             lambda t: log_cosh_ref(t, "none"), f"{LC_STR}; reduction 'none'")
    add_case("log_cosh_tiny_errors_mean", "log_cosh", "mean", {}, {"input": x, "target": y},
             lambda t: log_cosh_ref(t, "mean"), f"{LC_STR}; mean")
    n = "log_cosh_4d_mean"
    r = rng(n)
    add_case(n, "log_cosh", "mean", {}, {"input": randn(r, 2, 2, 3, 2, scale=3), "target": randn(r, 2, 2, 3, 2)},
             lambda t: log_cosh_ref(t, "mean"), f"{LC_STR}; mean")
    n = "log_cosh_single_element_sum"
    add_case(n, "log_cosh", "sum", {}, {"input": f32([-2.5]), "target": f32([0.75])},
             lambda t: log_cosh_ref(t, "sum"), f"{LC_STR}; sum")
    # half precision
    n = "log_cosh_f16_rand_none"
    r = rng(n)
    add_case(n, "log_cosh", "none", {}, {"input": h16(randn(r, 3, 5, scale=3)), "target": h16(randn(r, 3, 5))},
             lambda t: log_cosh_ref(t, "none"), f"{LC_STR}; reduction 'none'")
    n = "log_cosh_bf16_rand_mean"
    r = rng(n)
    add_case(n, "log_cosh", "mean", {}, {"input": bh16(randn(r, 4, 6, scale=3)), "target": bh16(randn(r, 4, 6))},
             lambda t: log_cosh_ref(t, "mean"), f"{LC_STR}; mean")
    # f16 near its max and in its subnormals (Taylor branch), bf16 far beyond f16's range
    sub = 2.0 ** -24
    add_case("log_cosh_f16_max_subnormal_none", "log_cosh", "none", {},
             {"input": h16([65504, -65504, 1000, 3 * sub, 1023 * sub, 0.00999, 0.0]),
              "target": h16([-65504, 0, -1000, 0, -sub, 0, 2.0 ** -14])},
             lambda t: log_cosh_ref(t, "none"), f"{LC_STR}; reduction 'none'")
    add_case("log_cosh_bf16_large_f32_target_sum", "log_cosh", "sum", {},
             {"input": bh16([1e30, -3e20, 7e4, 2.5, -1e-30, 0.01]), "target": f32([-1e30, 1e20, 0.5, 2.5, 0, 0])},
             lambda t: log_cosh_ref(t, "sum"), f"{LC_STR}; sum")


def pinball(t, red, quantiles):
    x, y = t["input"], t["target"]
    if quantiles is None:
        q = torch.tensor(0.5, dtype=D64)
        e = y - x
    else:
        q = torch.tensor([p32(v) for v in quantiles], dtype=D64)
        e = y.unsqueeze(-1) - x
    l = torch.maximum((q - 1) * e, q * e)
    return {"none": l, "mean": l.mean(), "sum": l.sum()}[red]


def quantile_cases():
    qs = [0.1, 0.5, 0.9]
    s = "e = y[..., None] - x; l = torch.maximum((q - 1) * e, q * e)  (textbook pinball, no factor 2)"
    for red in REDS:
        n = f"quantile_rand_q3_{red}"
        r = rng(n)
        add_case(n, "quantile", red, {"quantiles": qs}, {"input": randn(r, 4, 3), "target": randn(r, 4)},
                 lambda t, red=red: pinball(t, red, qs), f"{s}; reduction '{red}'")
    add_case("quantile_worked_mean", "quantile", "mean", {"quantiles": qs},
             {"input": f32([[8, 11, 12]]), "target": f32([10])},
             lambda t: pinball(t, "mean", qs), f"{s}; mean  # pytorch-forecasting gives 2x = 0.6",
             check={"value": 0.3, "grads": {"input": [-0.1 / 3, 0.5 / 3, 0.1 / 3]}})
    s0 = "e = y - x; l = torch.maximum(-0.5 * e, 0.5 * e)  (q = 0.5)"
    for red in REDS:
        n = f"quantile_noq_{red}"
        r = rng(n)
        add_case(n, "quantile", red, {}, {"input": randn(r, 3, 4), "target": randn(r, 3, 4)},
                 lambda t, red=red: pinball(t, red, None), f"{s0}; reduction '{red}'")
    q5 = [0.02, 0.1, 0.5, 0.9, 0.98]
    n = "quantile_3d_q5_mean"
    r = rng(n)
    add_case(n, "quantile", "mean", {"quantiles": q5}, {"input": randn(r, 2, 3, 5), "target": randn(r, 2, 3)},
             lambda t: pinball(t, "mean", q5), f"{s}; mean")
    qe = [0.0, 1.0]
    n = "quantile_extreme_q_none"
    r = rng(n)
    add_case(n, "quantile", "none", {"quantiles": qe}, {"input": randn(r, 3, 2), "target": randn(r, 3)},
             lambda t: pinball(t, "none", qe), f"{s}; reduction 'none'")
    n = "quantile_single_q_sum"
    r = rng(n)
    add_case(n, "quantile", "sum", {"quantiles": [0.25]}, {"input": randn(r, 5, 1), "target": randn(r, 5)},
             lambda t: pinball(t, "sum", [0.25]), f"{s}; sum")
    # half precision
    n = "quantile_f16_q3_mean"
    r = rng(n)
    add_case(n, "quantile", "mean", {"quantiles": qs}, {"input": h16(randn(r, 5, 3)), "target": h16(randn(r, 5))},
             lambda t: pinball(t, "mean", qs), f"{s}; mean")
    n = "quantile_bf16_q5_none"
    r = rng(n)
    add_case(n, "quantile", "none", {"quantiles": q5},
             {"input": bh16(randn(r, 2, 3, 5, scale=2)), "target": bh16(randn(r, 2, 3, scale=2))},
             lambda t: pinball(t, "none", q5), f"{s}; reduction 'none'")
    n = "quantile_bf16_input_f32_target_noq_sum"
    r = rng(n)
    add_case(n, "quantile", "sum", {}, {"input": bh16(randn(r, 3, 4)), "target": randn(r, 3, 4)},
             lambda t: pinball(t, "sum", None), f"{s0}; sum")
    # f16 subnormal errors: their signs pick q or q - 1 in each gradient; the largest f16 values
    sub = 2.0 ** -24
    add_case("quantile_f16_max_subnormal_q3_sum", "quantile", "sum", {"quantiles": qs},
             {"input": h16([[sub, -sub, 0], [5 * sub, 1023 * sub, 7 * sub], [65504, -65504, 60000]]),
              "target": h16([0, 3 * sub, 32768])},
             lambda t: pinball(t, "sum", qs), f"{s}; sum")


# --------------------------------------------------------------------------
# bce / bce_with_logits
# --------------------------------------------------------------------------

def bce_cases():
    def f(t, red):
        return F.binary_cross_entropy(t["input"], t["target"], weight=t.get("weight"), reduction=red)

    for red in REDS:
        n = f"bce_rand_{red}"
        r = rng(n)
        add_case(n, "bce", red, {},
                 {"input": uniform(r, 0.02, 0.98, 3, 4), "target": f32(r.integers(0, 2, (3, 4)))},
                 lambda t, red=red: f(t, red), f"F.binary_cross_entropy(x, y, reduction='{red}')")
    add_case("bce_worked_mean", "bce", "mean", {}, {"input": f32([0.8, 0.3]), "target": f32([1, 0])},
             lambda t: f(t, "mean"), "F.binary_cross_entropy(x, y, reduction='mean')",
             check={"value": 0.2899092, "grads": {"input": [-0.625, 0.7142857]}})
    add_case("bce_worked_clamp_none", "bce", "none", {},
             {"input": f32([0.8, 0.3, 0, 1]), "target": f32([1, 0, 1, 1])},
             lambda t: f(t, "none"), "F.binary_cross_entropy(x, y, reduction='none')",
             check={"none": [0.2231436, 0.3566749, 100.0, 0.0]})
    add_case("bce_exact_0_1_sum", "bce", "sum", {},
             {"input": f32([0, 0, 1, 1, 0.5, 1e-30]), "target": f32([0, 1, 0, 1, 0.3, 1])},
             lambda t: f(t, "sum"), "F.binary_cross_entropy(x, y, reduction='sum')  # log clamped at -100",
             check={"value": 200 + math.log(2) + 69.07755279, "tol": 1e-5})
    for red in ("none", "mean"):
        n = f"bce_weight_broadcast_{red}"
        r = rng(n)
        add_case(n, "bce", red, {},
                 {"input": uniform(r, 0.01, 0.99, 4, 3), "target": f32(r.integers(0, 2, (4, 3))),
                  "weight": f32([0.5, 2.0, 0.0])},
                 lambda t, red=red: f(t, red), f"F.binary_cross_entropy(x, y, weight=w[C], reduction='{red}')")
    n = "bce_weight_full_soft_target_sum"
    r = rng(n)
    add_case(n, "bce", "sum", {},
             {"input": uniform(r, 0.01, 0.99, 2, 3, 2), "target": uniform(r, 0, 1, 2, 3, 2),
              "weight": uniform(r, 0, 2, 2, 3, 2)},
             lambda t: f(t, "sum"), "F.binary_cross_entropy(x, y_soft, weight=w, reduction='sum')")

    def g(t, red):
        return F.binary_cross_entropy_with_logits(t["input"], t["target"], weight=t.get("weight"),
                                                  pos_weight=t.get("pos_weight"), reduction=red)

    for red in REDS:
        n = f"bce_with_logits_rand_{red}"
        r = rng(n)
        add_case(n, "bce_with_logits", red, {},
                 {"input": randn(r, 3, 4, scale=2), "target": f32(r.integers(0, 2, (3, 4)))},
                 lambda t, red=red: g(t, red), f"F.binary_cross_entropy_with_logits(x, y, reduction='{red}')")
    add_case("bce_with_logits_worked_pos_weight_mean", "bce_with_logits", "mean", {},
             {"input": f32([2, -1]), "target": f32([1, 0]), "pos_weight": f32([3])},
             lambda t: g(t, "mean"), "F.binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction='mean')",
             check={"value": 0.3470229, "grads": {"input": [-0.1788044, 0.1344707]}})
    add_case("bce_with_logits_worked_weight_pos_weight_none", "bce_with_logits", "none", {},
             {"input": f32([2, -1]), "target": f32([1, 0]), "weight": f32([0.5, 2]), "pos_weight": f32([3])},
             lambda t: g(t, "none"),
             "F.binary_cross_entropy_with_logits(x, y, weight=w, pos_weight=pw, reduction='none')",
             check={"none": [0.1903920, 0.6265234]})
    ext_x = f32([100, -100, 1e4, -1e4, 100, -100, 1e4, -1e4])
    ext_y = f32([0, 1, 0, 1, 1, 0, 1, 0])
    for red in ("none", "sum"):
        add_case(f"bce_with_logits_extreme_{red}", "bce_with_logits", red, {}, {"input": ext_x, "target": ext_y},
                 lambda t, red=red: g(t, red), f"F.binary_cross_entropy_with_logits(x, y, reduction='{red}')",
                 check={"value": 20200.0, "tol": 1e-9})
    n = "bce_with_logits_pos_weight_c_mean"
    r = rng(n)
    add_case(n, "bce_with_logits", "mean", {},
             {"input": randn(r, 4, 3, scale=2), "target": f32(r.integers(0, 2, (4, 3))),
              "pos_weight": f32([0.5, 1.0, 4.0])},
             lambda t: g(t, "mean"), "F.binary_cross_entropy_with_logits(x, y, pos_weight=pw[C], reduction='mean')")
    n = "bce_with_logits_pos_weight_nc_sum"
    r = rng(n)
    add_case(n, "bce_with_logits", "sum", {},
             {"input": randn(r, 2, 3, scale=2), "target": uniform(r, 0, 1, 2, 3),
              "pos_weight": uniform(r, 0.2, 3, 2, 3)},
             lambda t: g(t, "sum"), "F.binary_cross_entropy_with_logits(x, y_soft, pos_weight=pw[N,C], reduction='sum')")
    for red in ("none", "mean"):
        n = f"bce_with_logits_pos_weight_c11_weight_{red}"
        r = rng(n)
        add_case(n, "bce_with_logits", red, {},
                 {"input": randn(r, 2, 3, 2, 2, scale=2), "target": f32(r.integers(0, 2, (2, 3, 2, 2))),
                  "weight": uniform(r, 0, 2, 2, 3, 2, 2), "pos_weight": f32([[[2.0]], [[0.5]], [[5.0]]])},
                 lambda t, red=red: g(t, red),
                 f"F.binary_cross_entropy_with_logits(x[N,C,H,W], y, weight=w, pos_weight=pw[C,1,1], reduction='{red}')")
    n = "bce_with_logits_single_element_mean"
    add_case(n, "bce_with_logits", "mean", {}, {"input": f32([0.375]), "target": f32([1])},
             lambda t: g(t, "mean"), "F.binary_cross_entropy_with_logits(x, y, reduction='mean')")

    # half precision: bce
    n = "bce_f16_rand_mean"
    r = rng(n)
    add_case(n, "bce", "mean", {},
             {"input": h16(uniform(r, 0.02, 0.98, 3, 5)), "target": h16(r.integers(0, 2, (3, 5)))},
             lambda t: f(t, "mean"), "F.binary_cross_entropy(x, y, reduction='mean')")
    n = "bce_bf16_rand_none"
    r = rng(n)
    add_case(n, "bce", "none", {},
             {"input": bh16(uniform(r, 0.02, 0.98, 4, 3)), "target": bh16(uniform(r, 0, 1, 4, 3))},
             lambda t: f(t, "none"), "F.binary_cross_entropy(x, y_soft, reduction='none')")
    # bf16 has 8 significant bits: below 1 its step is 2**-8, so 0.999 and 0.9995 are 1 (log(1 - x)
    # clamped at -100 for a target below 1) and 0.995 and 0.998 are 0.99609375; it keeps small ones
    nx = [0.99, 0.995, 0.998, 0.9995, 0.999, 0.001, 1e-4, 1e-10, 0.5, 0.75, 0.996, 0.002]
    ny = [1, 0, 0, 1, 0.25, 0, 1, 1, 0.3, 0, 1, 0.9]
    for red in ("none", "sum"):
        add_case(f"bce_bf16_near_0_1_{red}", "bce", red, {}, {"input": bh16(nx), "target": bh16(ny)},
                 lambda t, red=red: f(t, red), f"F.binary_cross_entropy(x, y, reduction='{red}')  # log clamped at -100")
    # f16 near 1 (step 2**-11 below 1) and its subnormal probabilities, whose logs are -17 and above
    sub = 2.0 ** -24
    add_case("bce_f16_near_0_1_subnormal_none", "bce", "none", {},
             {"input": h16([0.9995, 0.99976, 1 - 2.0 ** -11, sub, 3 * sub, 1023 * sub, 2.0 ** -14, 0.5]),
              "target": h16([0, 0, 0, 1, 1, 1, 0.5, 1])},
             lambda t: f(t, "none"), "F.binary_cross_entropy(x, y, reduction='none')")
    # per-tensor dtypes: bf16 probabilities, f32 targets and weights; f16 ones with a bf16 weight
    n = "bce_bf16_target_weight_f32_mean"
    r = rng(n)
    add_case(n, "bce", "mean", {},
             {"input": bh16(uniform(r, 0.01, 0.99, 4, 3)), "target": f32(r.integers(0, 2, (4, 3))),
              "weight": f32([0.5, 2.0, 0.0])},
             lambda t: f(t, "mean"), "F.binary_cross_entropy(x, y, weight=w[C], reduction='mean')")
    n = "bce_f16_weight_bf16_sum"
    r = rng(n)
    add_case(n, "bce", "sum", {},
             {"input": h16(uniform(r, 0.01, 0.99, 2, 3, 2)), "target": h16(uniform(r, 0, 1, 2, 3, 2)),
              "weight": bh16(uniform(r, 0, 2, 2, 3, 2))},
             lambda t: f(t, "sum"), "F.binary_cross_entropy(x, y_soft, weight=w, reduction='sum')")

    # half precision: bce_with_logits
    n = "bce_with_logits_f16_rand_sum"
    r = rng(n)
    add_case(n, "bce_with_logits", "sum", {},
             {"input": h16(randn(r, 3, 5, scale=2)), "target": h16(r.integers(0, 2, (3, 5)))},
             lambda t: g(t, "sum"), "F.binary_cross_entropy_with_logits(x, y, reduction='sum')")
    n = "bce_with_logits_bf16_rand_none"
    r = rng(n)
    add_case(n, "bce_with_logits", "none", {},
             {"input": bh16(randn(r, 4, 3, scale=2)), "target": bh16(uniform(r, 0, 1, 4, 3))},
             lambda t: g(t, "none"), "F.binary_cross_entropy_with_logits(x, y_soft, reduction='none')")
    # large logits: f16 up to its max, bf16 far beyond
    add_case("bce_with_logits_f16_large_mean", "bce_with_logits", "mean", {},
             {"input": h16([65504, -65504, 60000, -60000, 1000, -1000, 30, -30, 2.0 ** -24, 0]),
              "target": h16([0, 1, 1, 0, 0, 1, 1, 1, 1, 0.5])},
             lambda t: g(t, "mean"), "F.binary_cross_entropy_with_logits(x, y, reduction='mean')")
    add_case("bce_with_logits_bf16_large_none", "bce_with_logits", "none", {},
             {"input": bh16([1e30, -1e30, 3e6, -3e6, 1e5, -1e5, 88.5, -88.5, 17.25, -0.01]),
              "target": bh16([0, 1, 1, 0, 0.5, 0.5, 0, 1, 0, 1])},
             lambda t: g(t, "none"), "F.binary_cross_entropy_with_logits(x, y, reduction='none')")
    # per-tensor dtypes: bf16 logits, f32 targets, weight and pos_weight; f16 logits, bf16 pos_weight
    for red in ("none", "mean"):
        n = f"bce_with_logits_bf16_weight_pos_weight_f32_{red}"
        r = rng(n)
        add_case(n, "bce_with_logits", red, {},
                 {"input": bh16(randn(r, 2, 3, 2, 2, scale=3)), "target": f32(r.integers(0, 2, (2, 3, 2, 2))),
                  "weight": uniform(r, 0, 2, 2, 3, 2, 2), "pos_weight": f32([[[2.0]], [[0.5]], [[5.0]]])},
                 lambda t, red=red: g(t, red),
                 f"F.binary_cross_entropy_with_logits(x[N,C,H,W], y, weight=w, pos_weight=pw[C,1,1], reduction='{red}')")
    n = "bce_with_logits_f16_pos_weight_bf16_sum"
    r = rng(n)
    add_case(n, "bce_with_logits", "sum", {},
             {"input": h16(randn(r, 4, 3, scale=4)), "target": h16(r.integers(0, 2, (4, 3))),
              "pos_weight": bh16(uniform(r, 0.2, 3, 3))},
             lambda t: g(t, "sum"), "F.binary_cross_entropy_with_logits(x, y, pos_weight=pw[C], reduction='sum')")


# --------------------------------------------------------------------------
# cross_entropy / nll
# --------------------------------------------------------------------------

WZ = f32([[1, 2, 3], [1, 1, 1]])
WT = i64([2, 0])
WCW = f32([1, 2, 3])


def ce(t, red, ignore_index=-100, label_smoothing=0.0):
    return F.cross_entropy(t["input"], t["target"], weight=t.get("weight"), ignore_index=ignore_index,
                           label_smoothing=p32(label_smoothing), reduction=red)


def ce_str(red, weight=False, ignore_index=None, ls=None, soft=False):
    a = ["x", "y_prob" if soft else "y"]
    if weight:
        a.append("weight=w")
    if ignore_index is not None:
        a.append(f"ignore_index={ignore_index}")
    if ls is not None:
        a.append(f"label_smoothing={ls}")
    a.append(f"reduction='{red}'")
    return "F.cross_entropy(" + ", ".join(a) + ")"


def ce_params(ignore_index=None, ls=None):
    p = {}
    if ignore_index is not None:
        p["ignore_index"] = ignore_index
    if ls is not None:
        p["label_smoothing"] = ls
    return p


def ce_case(name, red, tensors, ignore_index=None, ls=None, check=None, note=""):
    ii = -100 if ignore_index is None else ignore_index
    soft = is_float(tensors["target"])
    return add_case(name, "cross_entropy", red, ce_params(ignore_index, ls), tensors,
                    lambda t: ce(t, red, ii, ls or 0.0),
                    ce_str(red, "weight" in tensors, ignore_index, ls, soft) + note, check=check)


def cross_entropy_cases():
    for red in REDS:
        n = f"cross_entropy_rand_{red}"
        r = rng(n)
        ce_case(n, red, {"input": randn(r, 4, 5, scale=2), "target": i64(r.integers(0, 5, 4))})
    # worked table (docs/semantics.md: cross_entropy)
    ce_case("cross_entropy_worked_mean", "mean", {"input": WZ, "target": WT},
            check={"value": 0.7531091,
                   "grads": {"input": [0.0450153, 0.1223642, -0.1673795, -1 / 3, 1 / 6, 1 / 6]}})
    ce_case("cross_entropy_worked_weight_none", "none", {"input": WZ, "target": WT, "weight": WCW},
            check={"none": [1.2228179, 1.0986123]})
    ce_case("cross_entropy_worked_weight_sum", "sum", {"input": WZ, "target": WT, "weight": WCW},
            check={"value": 2.3214302})
    ce_case("cross_entropy_worked_weight_mean", "mean", {"input": WZ, "target": WT, "weight": WCW},
            check={"value": 0.5803575})
    ce_case("cross_entropy_worked_smooth_none", "none", {"input": WZ, "target": WT}, ls=0.1,
            check={"none": [0.5076060, 1.0986123]})
    _, _, g = ce_case("cross_entropy_worked_smooth_mean", "mean", {"input": WZ, "target": WT}, ls=0.1,
                      check={"value": 0.8031091})
    for i, want in zip(range(3, 6), (-0.30, 0.15, 0.15)):
        _close("cross_entropy_worked_smooth_mean", "grad row 2", g["input"].reshape(-1)[i].item(), want, 1e-6)
    ce_case("cross_entropy_worked_smooth_weight_none", "none", {"input": WZ, "target": WT, "weight": WCW}, ls=0.1,
            check={"none": [1.3153906, 1.2084735]})
    ce_case("cross_entropy_worked_smooth_weight_mean", "mean", {"input": WZ, "target": WT, "weight": WCW}, ls=0.1,
            check={"value": 0.6309660})
    ce_case("cross_entropy_worked_ignore_mean", "mean", {"input": WZ, "target": i64([2, -100])}, ignore_index=-100,
            check={"value": 0.4076060})
    ce_case("cross_entropy_worked_ignore_smooth_mean", "mean", {"input": WZ, "target": i64([2, -100])},
            ignore_index=-100, ls=0.1, check={"value": 0.5076060})
    ce_case("cross_entropy_worked_ignore_smooth_none", "none", {"input": WZ, "target": i64([2, -100])},
            ignore_index=-100, ls=0.1, check={"none": [0.5076060, 0.0]})
    ce_case("cross_entropy_all_ignored_mean", "mean", {"input": WZ, "target": i64([-100, -100])},
            ignore_index=-100, check={"value": float("nan"), "grads": {"input": [0.0] * 6}})
    ce_case("cross_entropy_all_ignored_sum", "sum", {"input": WZ, "target": i64([-100, -100])},
            ignore_index=-100, check={"value": 0.0})
    ce_case("cross_entropy_all_ignored_smooth_weight_mean", "mean",
            {"input": WZ, "target": i64([-100, -100]), "weight": WCW}, ignore_index=-100, ls=0.1,
            check={"value": float("nan")})
    ce_case("cross_entropy_worked_prob_onehot_mean", "mean",
            {"input": WZ, "target": f32([[0, 0, 1], [1, 0, 0]])}, check={"value": 0.7531091})
    ce_case("cross_entropy_worked_prob_onehot_weight_mean", "mean",
            {"input": WZ, "target": f32([[0, 0, 1], [1, 0, 0]]), "weight": WCW},
            check={"value": 1.1607151}, note="  # divides by N, not by sum(w)")
    ce_case("cross_entropy_worked_prob_soft_mean", "mean",
            {"input": WZ, "target": f32([[.2, .3, .5], [.6, .2, .2]])}, check={"value": 1.1031091})
    ce_case("cross_entropy_worked_smooth1_single_row_mean", "mean",
            {"input": f32([[1, 2, 3]]), "target": i64([2])}, ls=1.0, check={"value": 1.4076060})
    ce_case("cross_entropy_neginf_logit_mean", "mean",
            {"input": f32([[-np.inf, 1, 2], [0.5, -1, 2]]), "target": i64([2, 0])})
    ce_case("cross_entropy_neginf_logit_worked_mean", "mean",
            {"input": f32([[-np.inf, 1, 2]]), "target": i64([2])}, check={"value": 0.3132617})
    ce_case("cross_entropy_neginf_logit_smooth_mean", "mean",
            {"input": f32([[-np.inf, 1, 2]]), "target": i64([2])}, ls=0.1, check={"value": float("inf")})
    # random variants
    n = "cross_entropy_weight_mean"
    r = rng(n)
    ce_case(n, "mean", {"input": randn(r, 6, 4, scale=2), "target": i64(r.integers(0, 4, 6)),
                        "weight": uniform(r, 0.2, 3, 4)})
    n = "cross_entropy_ignore_valid_class0_mean"
    r = rng(n)
    y = i64(r.integers(0, 4, 6))
    y[[1, 4]] = 0
    ce_case(n, "mean", {"input": randn(r, 6, 4, scale=2), "target": y, "weight": uniform(r, 0.2, 3, 4)},
            ignore_index=0)
    n = "cross_entropy_ignore_valid_class0_none"
    r = rng(n)
    y = i64(r.integers(0, 4, 5))
    y[2] = 0
    ce_case(n, "none", {"input": randn(r, 5, 4, scale=2), "target": y}, ignore_index=0, ls=0.2)
    n = "cross_entropy_smooth1_mean"
    r = rng(n)
    ce_case(n, "mean", {"input": randn(r, 4, 5, scale=2), "target": i64(r.integers(0, 5, 4))}, ls=1.0)
    for red in REDS:
        n = f"cross_entropy_weight_smooth_ignore_{red}"
        r = rng(n)
        y = i64(r.integers(0, 5, 6))
        y[[0, 3]] = -100
        ce_case(n, red, {"input": randn(r, 6, 5, scale=2), "target": y, "weight": uniform(r, 0.2, 3, 5)},
                ignore_index=-100, ls=0.1)
    for red in REDS:
        n = f"cross_entropy_kdim_weight_ignore_{red}"
        r = rng(n)
        y = i64(r.integers(0, 3, (2, 2, 2)))
        y[0, 1, 0] = -100
        y[1, 0, 1] = -100
        ce_case(n, red, {"input": randn(r, 2, 3, 2, 2, scale=2), "target": y, "weight": uniform(r, 0.2, 3, 3)},
                ignore_index=-100)
    n = "cross_entropy_kdim_weight_ignore_smooth_mean"
    r = rng(n)
    y = i64(r.integers(0, 3, (2, 4)))
    y[1, 2] = -100
    ce_case(n, "mean", {"input": randn(r, 2, 3, 4, scale=2), "target": y, "weight": uniform(r, 0.2, 3, 3)},
            ignore_index=-100, ls=0.1)
    n = "cross_entropy_3d_none"
    r = rng(n)
    ce_case(n, "none", {"input": randn(r, 2, 3, 4, scale=2), "target": i64(r.integers(0, 3, (2, 4)))})
    n = "cross_entropy_c1_mean"
    r = rng(n)
    ce_case(n, "mean", {"input": randn(r, 4, 1, scale=2), "target": i64([0, 0, 0, 0])}, check={"value": 0.0})
    n = "cross_entropy_c1_smooth_none"
    r = rng(n)
    ce_case(n, "none", {"input": randn(r, 3, 1, scale=2), "target": i64([0, 0, 0])}, ls=0.1)
    n = "cross_entropy_single_element_sum"
    ce_case(n, "sum", {"input": f32([[0.25, -1.5]]), "target": i64([1])})
    ce_case("cross_entropy_logits_pm100_none", "none",
            {"input": f32([[100, -100, 0], [-100, 100, 0], [100, 100, -100]]), "target": i64([1, 1, 2])})
    ce_case("cross_entropy_logits_pm100_smooth_mean", "mean",
            {"input": f32([[100, -100, 0], [-100, 100, 0], [100, 100, -100]]), "target": i64([1, 1, 2])}, ls=0.1)
    # probability targets
    for red in REDS:
        n = f"cross_entropy_prob_{red}"
        r = rng(n)
        ce_case(n, red, {"input": randn(r, 4, 3, scale=2), "target": softmax32(r.standard_normal((4, 3)), 1)})
    n = "cross_entropy_prob_weight_mean"
    r = rng(n)
    ce_case(n, "mean", {"input": randn(r, 4, 3, scale=2), "target": softmax32(r.standard_normal((4, 3)), 1),
                        "weight": uniform(r, 0.2, 3, 3)})
    n = "cross_entropy_prob_smooth_mean"
    r = rng(n)
    ce_case(n, "mean", {"input": randn(r, 4, 3, scale=2), "target": softmax32(r.standard_normal((4, 3)), 1)},
            ls=0.1)
    n = "cross_entropy_prob_weight_smooth_sum"
    r = rng(n)
    ce_case(n, "sum", {"input": randn(r, 4, 3, scale=2), "target": softmax32(r.standard_normal((4, 3)), 1),
                       "weight": uniform(r, 0.2, 3, 3)}, ls=0.2)
    n = "cross_entropy_prob_kdim_none"
    r = rng(n)
    ce_case(n, "none", {"input": randn(r, 2, 3, 2, 2, scale=2),
                        "target": softmax32(r.standard_normal((2, 3, 2, 2)), 1)})
    ce_case("cross_entropy_prob_neginf_logit_mean", "mean",
            {"input": f32([[-np.inf, 1, 2], [0, 0, 1]]), "target": f32([[0, 0.25, 0.75], [0.5, 0.25, 0.25]])})

    # half precision: class targets
    for dt, h in (("f16", h16), ("bf16", bh16)):
        for red in REDS:
            n = f"cross_entropy_{dt}_rand_{red}"
            r = rng(n)
            ce_case(n, red, {"input": h(randn(r, 5, 4, scale=3)), "target": i64(r.integers(0, 4, 5))})
    # per-tensor dtypes: bf16 logits with an f32 weight, f16 ones with a bf16 weight
    for red in ("none", "mean"):
        n = f"cross_entropy_bf16_weight_f32_smooth_ignore_{red}"
        r = rng(n)
        y = i64(r.integers(0, 5, 6))
        y[[1, 4]] = -100
        ce_case(n, red, {"input": bh16(randn(r, 6, 5, scale=3)), "target": y, "weight": uniform(r, 0.2, 3, 5)},
                ignore_index=-100, ls=0.1)
    n = "cross_entropy_f16_weight_bf16_ignore_valid_class0_mean"
    r = rng(n)
    y = i64(r.integers(0, 4, 6))
    y[[0, 3]] = 0
    ce_case(n, "mean", {"input": h16(randn(r, 6, 4, scale=2)), "target": y, "weight": bh16(uniform(r, 0.2, 3, 4))},
            ignore_index=0)
    for dt, h in (("f16", h16), ("bf16", bh16)):
        n = f"cross_entropy_{dt}_kdim_weight_ignore_sum"
        r = rng(n)
        y = i64(r.integers(0, 3, (2, 2, 2)))
        y[1, 0, 1] = -100
        ce_case(n, "sum", {"input": h(randn(r, 2, 3, 2, 2, scale=2)), "target": y, "weight": h(uniform(r, 0.2, 3, 3))},
                ignore_index=-100)
    # many rows of an odd length (half values pack two to a 32-bit word)
    n = "cross_entropy_bf16_257_rows_weight_f32_ignore_mean"
    r = rng(n)
    y = i64(r.integers(0, 5, 257))
    y[::17] = -100
    ce_case(n, "mean", {"input": bh16(randn(r, 257, 5, scale=3)), "target": y, "weight": uniform(r, 0.2, 3, 5)},
            ignore_index=-100)
    # large logits: f16 up to its max (differences of 131008), bf16 far beyond f16's range
    lx16 = h16([[65504, -65504, 0], [60000, 59968, -1000], [-32768, 1000, 32768], [2.0 ** -24, 0, -2.0 ** -24]])
    lx_bf = bh16([[3e4, -3e4, 0], [1e30, -1e30, 1], [1e5, 1e5 + 512, -1e5], [-1e36, 2, 2.5]])
    ly = i64([1, 0, 2, 1])
    for dt, x in (("f16", lx16), ("bf16", lx_bf)):
        ce_case(f"cross_entropy_{dt}_large_logits_none", "none", {"input": x, "target": ly})
        ce_case(f"cross_entropy_{dt}_large_logits_smooth_mean", "mean", {"input": x, "target": ly}, ls=0.1)
    # a logit beyond f16's range is -inf once rounded: that class has probability 0
    ce_case("cross_entropy_f16_beyond_range_neginf_logit_mean", "mean",
            {"input": h16([[-70000, 1, 2], [0.5, -1, 2]], inf=True), "target": i64([2, 0])},
            note="  # -70000 rounds to -inf in float16")
    # half precision: probability targets (rounded, so a row sums to 1 only up to the half's step)
    for dt, h in (("f16", h16), ("bf16", bh16)):
        n = f"cross_entropy_{dt}_prob_mean"
        r = rng(n)
        ce_case(n, "mean", {"input": h(randn(r, 4, 3, scale=2)), "target": h(softmax32(r.standard_normal((4, 3)), 1))})
    n = "cross_entropy_bf16_prob_f32_weight_f32_smooth_sum"
    r = rng(n)
    ce_case(n, "sum", {"input": bh16(randn(r, 4, 3, scale=2)), "target": softmax32(r.standard_normal((4, 3)), 1),
                       "weight": uniform(r, 0.2, 3, 3)}, ls=0.2)
    n = "cross_entropy_f16_prob_kdim_none"
    r = rng(n)
    ce_case(n, "none", {"input": h16(randn(r, 2, 3, 2, 2, scale=2)),
                        "target": h16(softmax32(r.standard_normal((2, 3, 2, 2)), 1))})


def nll_cases():
    def f(t, red, ii=-100):
        return F.nll_loss(t["input"], t["target"], weight=t.get("weight"), ignore_index=ii, reduction=red)

    def s(red, w=False, ii=None):
        a = ["logp", "y"] + (["weight=w"] if w else []) + ([f"ignore_index={ii}"] if ii is not None else [])
        return "F.nll_loss(" + ", ".join(a + [f"reduction='{red}'"]) + ")"

    for red in REDS:
        n = f"nll_rand_{red}"
        r = rng(n)
        add_case(n, "nll", red, {}, {"input": log_softmax32(r.standard_normal((4, 5)) * 2, 1),
                                     "target": i64(r.integers(0, 5, 4))},
                 lambda t, red=red: f(t, red), s(red))
    wl = log_softmax32(np.asarray(WZ, dtype=np.float64), 1)
    add_case("nll_worked_weight_mean", "nll", "mean", {}, {"input": wl, "target": WT, "weight": WCW},
             lambda t: f(t, "mean"), s("mean", True),
             check={"value": 0.5803575, "grads": {"input": [0, 0, -0.75, -0.25, 0, 0]}})
    add_case("nll_raw_values_mean", "nll", "mean", {}, {"input": f32([[5, -3]]), "target": i64([0])},
             lambda t: f(t, "mean"), s("mean"), check={"value": -5.0})
    for red in REDS:
        n = f"nll_weight_ignore_{red}"
        r = rng(n)
        y = i64(r.integers(0, 4, 6))
        y[[2, 5]] = -100
        add_case(n, "nll", red, {"ignore_index": -100},
                 {"input": log_softmax32(r.standard_normal((6, 4)) * 2, 1), "target": y,
                  "weight": uniform(r, 0.2, 3, 4)},
                 lambda t, red=red: f(t, red), s(red, True, -100))
    n = "nll_ignore_valid_class1_mean"
    r = rng(n)
    y = i64(r.integers(0, 3, 5))
    y[0] = 1
    add_case(n, "nll", "mean", {"ignore_index": 1},
             {"input": log_softmax32(r.standard_normal((5, 3)), 1), "target": y},
             lambda t: f(t, "mean", 1), s("mean", False, 1))
    for red, want in (("mean", float("nan")), ("sum", 0.0)):
        add_case(f"nll_all_ignored_{red}", "nll", red, {"ignore_index": -100},
                 {"input": wl, "target": i64([-100, -100]), "weight": WCW},
                 lambda t, red=red: f(t, red), s(red, True, -100), check={"value": want})
    n = "nll_kdim_weight_mean"
    r = rng(n)
    add_case(n, "nll", "mean", {}, {"input": log_softmax32(r.standard_normal((2, 3, 2, 2)), 1),
                                    "target": i64(r.integers(0, 3, (2, 2, 2))), "weight": uniform(r, 0.2, 3, 3)},
             lambda t: f(t, "mean"), s("mean", True))
    n = "nll_kdim_none"
    r = rng(n)
    add_case(n, "nll", "none", {}, {"input": log_softmax32(r.standard_normal((2, 3, 4)), 1),
                                    "target": i64(r.integers(0, 3, (2, 4)))},
             lambda t: f(t, "none"), s("none"))
    # half precision
    for dt, h in (("f16", h16), ("bf16", bh16)):
        for red in ("none", "mean"):
            n = f"nll_{dt}_rand_{red}"
            r = rng(n)
            add_case(n, "nll", red, {}, {"input": h(log_softmax32(r.standard_normal((5, 4)) * 3, 1)),
                                         "target": i64(r.integers(0, 4, 5))},
                     lambda t, red=red: f(t, red), s(red))
        n = f"nll_{dt}_kdim_weight_ignore_sum"
        r = rng(n)
        y = i64(r.integers(0, 3, (2, 2, 2)))
        y[0, 1, 1] = -100
        add_case(n, "nll", "sum", {"ignore_index": -100},
                 {"input": h(log_softmax32(r.standard_normal((2, 3, 2, 2)), 1)), "target": y,
                  "weight": h(uniform(r, 0.2, 3, 3))},
                 lambda t: f(t, "sum"), s("sum", True, -100))
    # per-tensor dtypes: bf16 log-probabilities, an f32 weight
    for red in ("mean", "sum"):
        n = f"nll_bf16_weight_f32_ignore_{red}"
        r = rng(n)
        y = i64(r.integers(0, 4, 6))
        y[[2, 5]] = -100
        add_case(n, "nll", red, {"ignore_index": -100},
                 {"input": bh16(log_softmax32(r.standard_normal((6, 4)) * 2, 1)), "target": y,
                  "weight": uniform(r, 0.2, 3, 4)},
                 lambda t, red=red: f(t, red), s(red, True, -100))
    # the largest f16 magnitudes and subnormals as the picked values; bf16 far beyond
    add_case("nll_f16_max_subnormal_none", "nll", "none", {},
             {"input": h16([[-65504, 0, 1], [-2.0 ** -24, -3, 0], [-60000, -5, -1023 * 2.0 ** -24]]),
              "target": i64([0, 0, 2])},
             lambda t: f(t, "none"), s("none"))
    add_case("nll_bf16_large_f32_weight_sum", "nll", "sum", {},
             {"input": bh16([[-1e30, 0], [-3e5, -1], [-2.5, -1e-30]]), "target": i64([0, 0, 1]),
              "weight": f32([0.5, 2])},
             lambda t: f(t, "sum"), s("sum", True))


# --------------------------------------------------------------------------
# kl_div
# --------------------------------------------------------------------------

def kl_cases():
    def f(t, red, lt=False):
        return F.kl_div(t["input"], t["target"], reduction=red, log_target=lt)

    def s(red, lt=False):
        return f"F.kl_div(logq, {'logp' if lt else 'p'}, reduction='{red}', log_target={lt})"

    for red in REDS + ("batchmean",):
        n = f"kl_div_rand_{red}"
        r = rng(n)
        add_case(n, "kl_div", red, {}, {"input": log_softmax32(r.standard_normal((3, 4)), 1),
                                        "target": softmax32(r.standard_normal((3, 4)), 1)},
                 lambda t, red=red: f(t, red), s(red))
    for red in REDS + ("batchmean",):
        n = f"kl_div_log_target_{red}"
        r = rng(n)
        add_case(n, "kl_div", red, {"log_target": True},
                 {"input": log_softmax32(r.standard_normal((3, 4)), 1),
                  "target": log_softmax32(r.standard_normal((3, 4)), 1)},
                 lambda t, red=red: f(t, red, True), s(red, True))
    kx = log_softmax32(np.log([[0.25, 0.75]]), 1)
    ky = f32([[0.5, 0.5]])
    worked = {"none": {"none": [0.3465736, -0.2027326]}, "sum": {"value": 0.1438410},
              "mean": {"value": 0.0719205}, "batchmean": {"value": 0.1438410, "grads": {"input": [-0.5, -0.5]}}}
    for red, chk in worked.items():
        add_case(f"kl_div_worked_{red}", "kl_div", red, {}, {"input": kx, "target": ky},
                 lambda t, red=red: f(t, red), s(red), check=chk)
    add_case("kl_div_worked_two_rows_target_zero_batchmean", "kl_div", "batchmean", {},
             {"input": f32(np.log([[0.25, 0.75], [0.5, 0.5]])), "target": f32([[0.5, 0.5], [0, 1]])},
             lambda t: f(t, "batchmean"), s("batchmean"), check={"value": 0.4184941})
    for red in ("none", "mean"):
        n = f"kl_div_target_zeros_{red}"
        r = rng(n)
        y = softmax32(r.standard_normal((3, 4)) * 2, 1)
        y[0, 1] = 0
        y[2, :] = f32([0, 0, 1, 0])
        add_case(n, "kl_div", red, {}, {"input": log_softmax32(r.standard_normal((3, 4)), 1), "target": y},
                 lambda t, red=red: f(t, red), s(red))
    n = "kl_div_3d_batchmean"
    r = rng(n)
    add_case(n, "kl_div", "batchmean", {}, {"input": log_softmax32(r.standard_normal((2, 3, 4)), 2),
                                            "target": softmax32(r.standard_normal((2, 3, 4)), 2)},
             lambda t: f(t, "batchmean"), s("batchmean") + "  # divides by input.size(0) = 2")
    add_case("kl_div_target_zero_input_neginf_none", "kl_div", "none", {},
             {"input": f32([[-np.inf, 0.0], [-0.5, -1.0]]), "target": f32([[0.0, 1.0], [0.25, 0.75]])},
             lambda t: f(t, "none"), s("none") + "  # xlogy(0,0) - 0*(-inf) = NaN")
    # half precision
    for dt, h in (("f16", h16), ("bf16", bh16)):
        n = f"kl_div_{dt}_rand_batchmean"
        r = rng(n)
        add_case(n, "kl_div", "batchmean", {}, {"input": h(log_softmax32(r.standard_normal((3, 5)) * 2, 1)),
                                                "target": h(softmax32(r.standard_normal((3, 5)) * 2, 1))},
                 lambda t: f(t, "batchmean"), s("batchmean"))
        n = f"kl_div_{dt}_log_target_none"
        r = rng(n)
        add_case(n, "kl_div", "none", {"log_target": True},
                 {"input": h(log_softmax32(r.standard_normal((3, 4)), 1)),
                  "target": h(log_softmax32(r.standard_normal((3, 4)) * 3, 1))},
                 lambda t: f(t, "none", True), s("none", True))
    # per-tensor dtypes: bf16 log-probabilities, f32 probabilities with zeros
    n = "kl_div_bf16_input_f32_target_zeros_sum"
    r = rng(n)
    y = softmax32(r.standard_normal((3, 4)) * 2, 1)
    y[1, 2] = 0
    add_case(n, "kl_div", "sum", {}, {"input": bh16(log_softmax32(r.standard_normal((3, 4)), 1)), "target": y},
             lambda t: f(t, "sum"), s("sum"))
    # f16 subnormal probabilities (the target's xlogy) and large log-probabilities
    sub = 2.0 ** -24
    add_case("kl_div_f16_subnormal_target_large_input_mean", "kl_div", "mean", {},
             {"input": h16([[-65504, -1, -0.25], [-20, -1000, -2.0 ** -14]]),
              "target": h16([[sub, 0.75, 0.25], [1023 * sub, 3 * sub, 1]])},
             lambda t: f(t, "mean"), s("mean"))


# --------------------------------------------------------------------------
# focal losses
# --------------------------------------------------------------------------

def sigmoid_focal_cases():
    def f(t, red, alpha=0.25, gamma=2.0):
        return sigmoid_focal_loss(t["input"], t["target"], alpha=p32(alpha), gamma=p32(gamma), reduction=red)

    def s(red, alpha=0.25, gamma=2.0):
        return f"torchvision.ops.sigmoid_focal_loss(x, y, alpha={alpha}, gamma={gamma}, reduction='{red}')"

    def prm(alpha=0.25, gamma=2.0):
        p = {}
        if alpha != 0.25:
            p["alpha"] = alpha
        if gamma != 2.0:
            p["gamma"] = gamma
        return p

    for red in REDS:
        n = f"sigmoid_focal_rand_{red}"
        r = rng(n)
        add_case(n, "sigmoid_focal", red, {}, {"input": randn(r, 3, 4, scale=2),
                                               "target": f32(r.integers(0, 2, (3, 4)))},
                 lambda t, red=red: f(t, red), s(red))
    wx, wy = f32([0, 2, -3, 5]), f32([1, 0, 1, 1])
    add_case("sigmoid_focal_worked_none", "sigmoid_focal", "none", {}, {"input": wx, "target": wy},
             lambda t: f(t, "none"), s("none"),
             check={"none": [0.0433217, 1.2375586, 0.6915701, 7.52e-8]})
    add_case("sigmoid_focal_worked_mean", "sigmoid_focal", "mean", {}, {"input": wx, "target": wy},
             lambda t: f(t, "mean"), s("mean"), check={"value": 0.4931126})
    _, _, g = add_case("sigmoid_focal_worked_sum", "sigmoid_focal", "sum", {}, {"input": wx, "target": wy},
                       lambda t: f(t, "sum"), s("sum"))
    _close("sigmoid_focal_worked_sum", "grad[0]", g["input"][0].item(), -0.0745717, 1e-6)
    add_case("sigmoid_focal_worked_alpha_off_none", "sigmoid_focal", "none", prm(alpha=-1.0),
             {"input": wx, "target": wy}, lambda t: f(t, "none", alpha=-1.0), s("none", alpha=-1),
             check={"none": [0.1732868, 1.6500782, 2.7662804, 3.008e-7]})
    n = "sigmoid_focal_alpha_off_mean"
    r = rng(n)
    add_case(n, "sigmoid_focal", "mean", prm(alpha=-1.0),
             {"input": randn(r, 2, 5, scale=2), "target": f32(r.integers(0, 2, (2, 5)))},
             lambda t: f(t, "mean", alpha=-1.0), s("mean", alpha=-1))
    n = "sigmoid_focal_gamma0_mean"
    r = rng(n)
    add_case(n, "sigmoid_focal", "mean", prm(gamma=0.0),
             {"input": randn(r, 2, 5, scale=2), "target": f32(r.integers(0, 2, (2, 5)))},
             lambda t: f(t, "mean", gamma=0.0), s("mean", gamma=0.0))
    n = "sigmoid_focal_gamma05_mean"
    r = rng(n)
    add_case(n, "sigmoid_focal", "mean", prm(gamma=0.5),
             {"input": randn(r, 2, 5, scale=2), "target": f32(r.integers(0, 2, (2, 5)))},
             lambda t: f(t, "mean", gamma=0.5), s("mean", gamma=0.5))
    add_case("sigmoid_focal_gamma05_logits_pm30_none", "sigmoid_focal", "none", prm(gamma=0.5),
             {"input": f32([30, -30, 30, -30]), "target": f32([1, 0, 0, 1])},
             lambda t: f(t, "none", gamma=0.5), s("none", gamma=0.5) + "  # float64: grads finite (~1e-20)")
    for red in ("none", "sum"):
        add_case(f"sigmoid_focal_logits_pm30_pm100_{red}", "sigmoid_focal", red, {},
                 {"input": f32([30, -30, 30, -30, 100, -100, 100, -100]),
                  "target": f32([1, 0, 0, 1, 1, 0, 0, 1])},
                 lambda t, red=red: f(t, red), s(red))
    n = "sigmoid_focal_soft_target_alpha05_gamma1_sum"
    r = rng(n)
    add_case(n, "sigmoid_focal", "sum", prm(alpha=0.5, gamma=1.0),
             {"input": randn(r, 6, scale=2), "target": uniform(r, 0, 1, 6)},
             lambda t: f(t, "sum", alpha=0.5, gamma=1.0), s("sum", alpha=0.5, gamma=1.0))
    n = "sigmoid_focal_4d_mean"
    r = rng(n)
    add_case(n, "sigmoid_focal", "mean", {},
             {"input": randn(r, 2, 2, 2, 2, scale=2), "target": f32(r.integers(0, 2, (2, 2, 2, 2)))},
             lambda t: f(t, "mean"), s("mean"))
    # half precision
    for dt, h in (("f16", h16), ("bf16", bh16)):
        n = f"sigmoid_focal_{dt}_rand_mean"
        r = rng(n)
        add_case(n, "sigmoid_focal", "mean", {}, {"input": h(randn(r, 3, 5, scale=3)),
                                                  "target": h(r.integers(0, 2, (3, 5)))},
                 lambda t: f(t, "mean"), s("mean"))
    add_case("sigmoid_focal_f16_large_none", "sigmoid_focal", "none", {},
             {"input": h16([65504, -65504, 1000, -1000, 30, -30, 2.0 ** -24, 0]),
              "target": h16([0, 1, 1, 1, 0, 1, 1, 0])},
             lambda t: f(t, "none"), s("none"))
    # (gamma 2: with gamma < 1 autograd's gradient at a saturated right answer is 0 * inf = NaN)
    add_case("sigmoid_focal_bf16_large_sum", "sigmoid_focal", "sum", {},
             {"input": bh16([1e30, -1e30, 1e5, -1e5, 100, -100, 17.25, -0.01]),
              "target": bh16([0, 1, 1, 0, 0, 0, 1, 1])},
             lambda t: f(t, "sum"), s("sum"))
    # per-tensor dtypes: bf16 logits, f32 soft targets
    n = "sigmoid_focal_bf16_f32_soft_target_alpha05_gamma1_none"
    r = rng(n)
    add_case(n, "sigmoid_focal", "none", prm(alpha=0.5, gamma=1.0),
             {"input": bh16(randn(r, 6, scale=2)), "target": uniform(r, 0, 1, 6)},
             lambda t: f(t, "none", alpha=0.5, gamma=1.0), s("none", alpha=0.5, gamma=1.0))


def softmax_focal64(t, red, gamma=2.0, ignore_index=-100):
    x, y, w = t["input"], t["target"], t.get("weight")
    logp = F.log_softmax(x, dim=1)
    valid = y != ignore_index
    ysafe = torch.where(valid, y, torch.zeros_like(y))
    logpt = logp.gather(1, ysafe.unsqueeze(1)).squeeze(1)
    pt = logpt.exp()
    wy = w[ysafe] if w is not None else torch.ones_like(logpt)
    wy = wy * valid.to(D64)
    l = wy * (1 - pt).pow(p32(gamma)) * (-logpt)
    if red == "mean":
        # Like cross_entropy: a zero total weight (e.g. all rows ignored) gives a NaN
        # value with a zero gradient (autograd of a plain 0/0 would give NaN gradients).
        W = wy.sum()
        return torch.where(W > 0, l.sum() / torch.where(W > 0, W, torch.ones_like(W)),
                           torch.full_like(W, float("nan")))
    return {"none": l, "sum": l.sum()}[red]


def softmax_focal_cases():
    SF = ("p_t = softmax(x)[y]; l = w[y] * (1 - p_t)**{g} * -log(p_t), ignored rows 0; "
          "mean = sum(l) / sum(w[y] over non-ignored)")

    def prm(gamma=2.0, ii=None):
        p = {}
        if gamma != 2.0:
            p["gamma"] = gamma
        if ii is not None:
            p["ignore_index"] = ii
        return p

    def sf(name, red, tensors, gamma=2.0, ii=None, check=None, extra=""):
        return add_case(name, "softmax_focal", red, prm(gamma, ii), tensors,
                        lambda t: softmax_focal64(t, red, gamma, -100 if ii is None else ii),
                        SF.format(g=gamma) + f"; reduction '{red}'" + extra, check=check)

    for red in REDS:
        n = f"softmax_focal_rand_{red}"
        r = rng(n)
        sf(n, red, {"input": randn(r, 5, 4, scale=2), "target": i64(r.integers(0, 4, 5))})
    _, out, _ = sf("softmax_focal_worked_none", "none", {"input": WZ, "target": WT},
                   check={"none": [0.0456778, 0.4882721]})
    v, _, _ = sf("softmax_focal_worked_sum", "sum", {"input": WZ, "target": WT}, check={"value": 0.5339499},
                 extra="; == kornia.losses.focal_loss(x, y, alpha=None, gamma=2, reduction='sum')")
    k = kornia_focal_loss(torch.tensor(WZ, dtype=D64), torch.tensor(WT), alpha=None, gamma=2.0, reduction="sum")
    assert_close("softmax_focal_worked_sum vs kornia", v, k)
    sf("softmax_focal_worked_grad_sum", "sum", {"input": f32([[1, 1, 1]]), "target": i64([0])},
       check={"grads": {"input": [-0.6218110, 0.3109055, 0.3109055]}})
    # kornia cross-checks (no weight): K-dim, with ignored pixels
    for n, shape, ign in (("softmax_focal_kornia_kdim_sum", (2, 3, 2, 2), False),
                          ("softmax_focal_kornia_ignore_sum", (6, 4), True)):
        r = rng(n)
        x = randn(r, *shape, scale=2)
        y = i64(r.integers(0, shape[1], (shape[0],) + shape[2:]))
        if ign:
            y[[1, 4]] = -100
        v, _, g = sf(n, "sum", {"input": x, "target": y}, ii=-100 if ign else None,
                     extra="; == kornia.losses.focal_loss(x, y, alpha=None, gamma=2, reduction='sum')")
        xt = torch.tensor(x, dtype=D64, requires_grad=True)
        k = kornia_focal_loss(xt, torch.tensor(y), alpha=None, gamma=2.0, reduction="sum")
        assert_close(n + " vs kornia", v, k)
        assert_close(n + " vs kornia grad", g["input"], torch.autograd.grad(k, xt)[0])
    # gamma = 0 equals cross_entropy (value and gradient)
    for red in ("mean", "none"):
        n = f"softmax_focal_gamma0_weight_ignore_{red}"
        r = rng(n)
        x = randn(r, 6, 4, scale=2)
        y = i64(r.integers(0, 4, 6))
        y[2] = -100
        w = uniform(r, 0.2, 3, 4)
        v, out, g = sf(n, red, {"input": x, "target": y, "weight": w}, gamma=0.0, ii=-100,
                       extra="; == F.cross_entropy(x, y, weight=w, ignore_index=-100)")
        xt = torch.tensor(x, dtype=D64, requires_grad=True)
        c = F.cross_entropy(xt, torch.tensor(y), weight=torch.tensor(w, dtype=D64), reduction=red)
        assert_close(n + " vs CE", out, c)
        assert_close(n + " vs CE grad", g["input"], torch.autograd.grad(c.sum(), xt)[0])
    n = "softmax_focal_weight_mean"
    r = rng(n)
    sf(n, "mean", {"input": randn(r, 6, 4, scale=2), "target": i64(r.integers(0, 4, 6)),
                   "weight": uniform(r, 0.2, 3, 4)})
    n = "softmax_focal_weight_ignore_sum"
    r = rng(n)
    y = i64(r.integers(0, 4, 6))
    y[[0, 5]] = -100
    sf(n, "sum", {"input": randn(r, 6, 4, scale=2), "target": y, "weight": uniform(r, 0.2, 3, 4)}, ii=-100)
    n = "softmax_focal_ignore_valid_class1_mean"
    r = rng(n)
    y = i64(r.integers(0, 3, 6))
    y[3] = 1
    sf(n, "mean", {"input": randn(r, 6, 3, scale=2), "target": y}, ii=1)
    for red in ("mean", "none"):
        n = f"softmax_focal_kdim_weight_ignore_{red}"
        r = rng(n)
        y = i64(r.integers(0, 3, (2, 2, 2)))
        y[1, 1, 0] = -100
        sf(n, red, {"input": randn(r, 2, 3, 2, 2, scale=2), "target": y, "weight": uniform(r, 0.2, 3, 3)},
           ii=-100)
    n = "softmax_focal_gamma05_mean"
    r = rng(n)
    sf(n, "mean", {"input": randn(r, 5, 3, scale=2), "target": i64(r.integers(0, 3, 5))}, gamma=0.5)
    sf("softmax_focal_all_ignored_mean", "mean", {"input": WZ, "target": i64([-100, -100])}, ii=-100,
       check={"value": float("nan"), "grads": {"input": [0.0] * 6}})
    # half precision
    for dt, h in (("f16", h16), ("bf16", bh16)):
        for red in ("none", "mean"):
            n = f"softmax_focal_{dt}_rand_{red}"
            r = rng(n)
            sf(n, red, {"input": h(randn(r, 5, 4, scale=3)), "target": i64(r.integers(0, 4, 5))})
        n = f"softmax_focal_{dt}_kdim_weight_ignore_sum"
        r = rng(n)
        y = i64(r.integers(0, 3, (2, 2, 2)))
        y[0, 0, 1] = -100
        sf(n, "sum", {"input": h(randn(r, 2, 3, 2, 2, scale=2)), "target": y, "weight": h(uniform(r, 0.2, 3, 3))},
           ii=-100)
    # per-tensor dtypes: bf16 logits, an f32 weight
    n = "softmax_focal_bf16_weight_f32_gamma05_mean"
    r = rng(n)
    y = i64(r.integers(0, 4, 6))
    y[2] = -100
    sf(n, "mean", {"input": bh16(randn(r, 6, 4, scale=2)), "target": y, "weight": uniform(r, 0.2, 3, 4)},
       gamma=0.5, ii=-100)
    # large logits
    sf("softmax_focal_f16_large_logits_none", "none",
       {"input": h16([[65504, -65504, 0], [60000, 59968, -1000], [-32768, 1000, 32768]]), "target": i64([1, 0, 2])})
    sf("softmax_focal_bf16_large_logits_sum", "sum",
       {"input": bh16([[3e4, -3e4, 0], [1e30, -1e30, 1], [1e5, 1e5 + 512, -1e5]]), "target": i64([1, 0, 2])})


# --------------------------------------------------------------------------
# cosine_embedding / triplet_margin
# --------------------------------------------------------------------------

def cosine_cases():
    def f(t, red, margin=0.0):
        y = t.get("labels")
        if y is None:
            y = torch.ones(t["input"].shape[:-1], dtype=torch.int64)
        return F.cosine_embedding_loss(t["input"], t["target"], y, margin=p32(margin), reduction=red)

    def s(red, margin=0.0, labels=True):
        return (f"F.cosine_embedding_loss(x1, x2, {'y' if labels else 'torch.ones(N)'}, margin={margin}, "
                f"reduction='{red}')")

    def cc(name, red, tensors, margin=0.0, check=None):
        return add_case(name, "cosine_embedding", red, {"margin": margin} if margin != 0.0 else {}, tensors,
                        lambda t: f(t, red, margin), s(red, margin, "labels" in tensors),
                        grad_of=("input", "target"), check=check)

    for red in REDS:
        n = f"cosine_embedding_rand_{red}"
        r = rng(n)
        cc(n, red, {"input": randn(r, 4, 5), "target": randn(r, 4, 5), "labels": i64([1, -1, -1, 1])})
    x1, x2 = f32([[1, 0], [1, 2]]), f32([[1, 1], [-2, -4]])
    cc("cosine_embedding_worked_margin05_none", "none", {"input": x1, "target": x2, "labels": i64([1, -1])},
       margin=0.5, check={"none": [0.2928932, 0.0]})
    cc("cosine_embedding_worked_margin05_mean", "mean", {"input": x1, "target": x2, "labels": i64([1, -1])},
       margin=0.5, check={"value": 0.1464466, "grads": {"input": [-3.5e-13, -0.3535534, 0, 0]}})
    cc("cosine_embedding_worked_all_similar_none", "none", {"input": x1, "target": x2, "labels": i64([1, 1])},
       check={"none": [0.2928932, 2.0]})
    cc("cosine_embedding_worked_no_labels_none", "none", {"input": x1, "target": x2},
       check={"none": [0.2928932, 2.0]})
    cc("cosine_embedding_worked_neg_margin_none", "none", {"input": x1, "target": x2, "labels": i64([-1, -1])},
       margin=-0.9, check={"none": [1.6071068, 0.0]})
    n = "cosine_embedding_no_labels_mean"
    r = rng(n)
    cc(n, "mean", {"input": randn(r, 3, 4), "target": randn(r, 3, 4)})
    n = "cosine_embedding_margin05_sum"
    r = rng(n)
    cc(n, "sum", {"input": randn(r, 5, 3), "target": randn(r, 5, 3), "labels": i64([-1, -1, 1, -1, -1])},
       margin=0.5)
    n = "cosine_embedding_neg_margin_mean"
    r = rng(n)
    cc(n, "mean", {"input": randn(r, 4, 3), "target": randn(r, 4, 3), "labels": i64([-1, -1, 1, -1])},
       margin=-0.3)
    cc("cosine_embedding_zero_vector_none", "none",
       {"input": f32([[0, 0], [1, 2], [0.5, -1]]), "target": f32([[1, 1], [0, 0], [0, 0]]),
        "labels": i64([1, 1, -1])})
    n = "cosine_embedding_1d_label_neg_none"
    r = rng(n)
    cc(n, "none", {"input": randn(r, 4), "target": randn(r, 4), "labels": i64(-1)}, margin=-0.5)
    n = "cosine_embedding_1d_label_pos_mean"
    r = rng(n)
    cc(n, "mean", {"input": randn(r, 6), "target": randn(r, 6), "labels": i64(1)})
    n = "cosine_embedding_1d_no_labels_sum"
    r = rng(n)
    cc(n, "sum", {"input": randn(r, 3), "target": randn(r, 3)})
    # half precision
    n = "cosine_embedding_f16_rand_none"
    r = rng(n)
    cc(n, "none", {"input": h16(randn(r, 4, 5)), "target": h16(randn(r, 4, 5)), "labels": i64([1, -1, -1, 1])})
    n = "cosine_embedding_bf16_no_labels_mean"
    r = rng(n)
    cc(n, "mean", {"input": bh16(randn(r, 3, 6)), "target": bh16(randn(r, 3, 6))})
    # per-tensor dtypes: f16 and bf16 vectors side by side, and bf16 next to f32
    n = "cosine_embedding_f16_bf16_margin05_sum"
    r = rng(n)
    cc(n, "sum", {"input": h16(randn(r, 5, 3)), "target": bh16(randn(r, 5, 3)),
                  "labels": i64([-1, -1, 1, -1, 1])}, margin=0.5)
    n = "cosine_embedding_bf16_f32_neg_margin_mean"
    r = rng(n)
    cc(n, "mean", {"input": bh16(randn(r, 4, 3)), "target": randn(r, 4, 3), "labels": i64([-1, 1, -1, -1])},
       margin=-0.3)
    # f16's largest values, and vectors of subnormals (their norms are below torch's 1e-12 guard,
    # so the cosine is about dot / 1e-12)
    sub = 2.0 ** -24
    cc("cosine_embedding_f16_max_subnormal_none", "none",
       {"input": h16([[65504, -65504, 60000], [sub, 3 * sub, 1023 * sub], [60000, 1, -2]]),
        "target": h16([[-32768, 65504, 1000], [2 * sub, -sub, 512 * sub], [sub, 2.0 ** -14, 0.5]]),
        "labels": i64([1, 1, -1])})
    n = "cosine_embedding_bf16_129x7_mean"
    r = rng(n)
    cc(n, "mean", {"input": bh16(randn(r, 129, 7)), "target": bh16(randn(r, 129, 7)),
                   "labels": i64(r.choice([-1, 1], 129))}, margin=0.25)
    cc("cosine_embedding_bf16_large_none", "none",
       {"input": bh16([[1e15, -3e14, 2], [1e-15, 2e-16, 0]]), "target": bh16([[-2e12, 7e14, 1e15], [3e-16, -1e-15, 0]]),
        "labels": i64([1, -1])}, margin=-0.5)


def triplet_cases():
    def f(t, red, margin=1.0, p=2.0, swap=False):
        return F.triplet_margin_loss(t["input"], t["positive"], t["negative"], margin=p32(margin), p=p32(p),
                                     eps=p32(1e-6), swap=swap, reduction=red)

    def s(red, margin=1.0, p=2.0, swap=False):
        return (f"F.triplet_margin_loss(a, pos, neg, margin={margin}, p={p}, eps=1e-6, swap={swap}, "
                f"reduction='{red}')")

    def tc(name, red, tensors, margin=1.0, p=2.0, swap=False, check=None):
        prm = {}
        if margin != 1.0:
            prm["margin"] = margin
        if p != 2.0:
            prm["p"] = p
        if swap:
            prm["swap"] = True
        return add_case(name, "triplet_margin", red, prm, tensors, lambda t: f(t, red, margin, p, swap),
                        s(red, margin, p, swap), grad_of=("input", "positive", "negative"), check=check)

    def trip(r, *shape, spread=1.0):
        a = randn(r, *shape)
        return {"input": a, "positive": f32(a + randn(r, *shape, scale=0.6 * spread)),
                "negative": f32(a + randn(r, *shape, scale=spread))}

    for red in REDS:
        n = f"triplet_margin_rand_{red}"
        r = rng(n)
        tc(n, red, trip(r, 4, 3))
    tc("triplet_margin_worked_none", "none",
       {"input": f32([[0, 0]]), "positive": f32([[0, 1]]), "negative": f32([[0, 1.5]])},
       check={"none": [0.5], "grads": {"input": [3.3e-7, 0], "positive": [-1e-6, 1.0],
                                       "negative": [6.7e-7, -1.0]}})
    tc("triplet_margin_worked_swap_sum", "sum",
       {"input": f32([[0, 0]]), "positive": f32([[3, 0]]), "negative": f32([[4, 0]])}, swap=True,
       check={"value": 3.0})
    tc("triplet_margin_worked_p1_mean", "mean",
       {"input": f32([[0, 0]]), "positive": f32([[1, 1]]), "negative": f32([[2, 0]])}, p=1.0,
       check={"value": 0.999998})
    n = "triplet_margin_p1_mean"
    r = rng(n)
    tc(n, "mean", trip(r, 5, 3), p=1.0)
    n = "triplet_margin_p3_none"
    r = rng(n)
    tc(n, "none", trip(r, 4, 3), p=3.0)
    for red in ("mean", "none"):
        n = f"triplet_margin_swap_{red}"
        r = rng(n)
        d = trip(r, 5, 3, spread=1.5)
        tc(n, red, d, swap=True)
    # identical vectors: a == p in every row, a == p == n in row 0
    n = "triplet_margin_identical_none"
    r = rng(n)
    a = randn(r, 3, 4)
    neg = f32(a + randn(r, 3, 4, scale=0.3))
    neg[0] = a[0]
    _, out, _ = tc(n, "none", {"input": a, "positive": a.copy(), "negative": neg})
    # d(a, a) = eps * D**(1/p) = 2e-6 and row 0 has d_an = d_ap: loss = margin exactly
    _close(n, "row 0", out[0].item(), 1.0, 1e-12)
    n = "triplet_margin_margin05_sum"
    r = rng(n)
    tc(n, "sum", trip(r, 4, 3), margin=0.5)
    n = "triplet_margin_1d_mean"
    r = rng(n)
    tc(n, "mean", trip(r, 5))
    n = "triplet_margin_1d_p1_none"
    r = rng(n)
    tc(n, "none", trip(r, 4), p=1.0)
    # half precision
    def half_trip(d, *hs):
        return {k: h(v) for (k, v), h in zip(d.items(), hs)}

    n = "triplet_margin_f16_rand_mean"
    tc(n, "mean", half_trip(trip(rng(n), 4, 5), h16, h16, h16))
    n = "triplet_margin_bf16_rand_none"
    tc(n, "none", half_trip(trip(rng(n), 4, 3, spread=1.5), bh16, bh16, bh16))
    n = "triplet_margin_bf16_swap_p1_sum"
    tc(n, "sum", half_trip(trip(rng(n), 5, 3, spread=1.5), bh16, bh16, bh16), p=1.0, swap=True)
    # per-tensor dtypes: a bf16 anchor, an f16 positive, an f32 negative
    n = "triplet_margin_bf16_f16_f32_margin05_none"
    tc(n, "none", half_trip(trip(rng(n), 4, 3), bh16, h16, f32), margin=0.5)
    # distances near f16's max; bf16 vectors of 1e15
    tc("triplet_margin_f16_large_none", "none",
       {"input": h16([[65504, 0], [-65504, 1000]]), "positive": h16([[60000, 3], [-60000, 1000]]),
        "negative": h16([[0, -65504], [-65504, 1024]])})
    tc("triplet_margin_bf16_large_mean", "mean",
       {"input": bh16([[1e15, 0, 1], [-3e12, 2e12, 0]]), "positive": bh16([[1e15, 1e13, 1], [-3e12, 2e12, 1e11]]),
        "negative": bh16([[-1e15, 0, 1], [-3e12, 2e12, 3e10]])})


# --------------------------------------------------------------------------
# dice (segmentation_models_pytorch)
# --------------------------------------------------------------------------

class _PerClassDice(DiceLoss):
    """smp's DiceLoss stopped right before its mean: the per-class loss vector."""

    def aggregate_loss(self, loss):
        return loss


def dice_cases():
    def run(t, red, kw):
        x, y = t["input"], t["target"]
        per_class = _PerClassDice(**kw)(x, y)
        ref = DiceLoss(**kw)(x, y)
        assert_close("dice per-class mean vs smp", per_class.mean(), ref)
        return {"none": per_class, "mean": ref, "sum": per_class.sum()}[red]

    def dc(name, red, tensors, mode, from_logits=True, smooth=0.0, ignore_index=None, log_loss=False,
           check=None):
        kw = dict(mode=mode, from_logits=from_logits, smooth=p32(smooth), eps=p32(1e-7),
                  ignore_index=ignore_index, log_loss=log_loss)
        prm = {"mode": mode}
        if not from_logits:
            prm["from_logits"] = False
        if smooth != 0.0:
            prm["smooth"] = smooth
        if ignore_index is not None:
            prm["ignore_index"] = ignore_index
        if log_loss:
            prm["log_loss"] = True
        args = [f"mode='{mode}'", f"from_logits={from_logits}", f"smooth={smooth}", "eps=1e-7",
                f"ignore_index={ignore_index}", f"log_loss={log_loss}"]
        tail = {"none": "  # per-class losses before the mean",
                "mean": "", "sum": "  # sum of the per-class losses"}[red]
        s = "segmentation_models_pytorch.losses.DiceLoss(" + ", ".join(args) + ")(x, y)" + tail
        return add_case(name, "dice", red, prm, tensors, lambda t: run(t, red, kw), s, check=check)

    def mc_target(r, shape, C):
        # every class present
        y = r.integers(0, C, shape).reshape(-1)
        y[:C] = r.permutation(C)
        return i64(y.reshape(shape))

    for red in REDS:
        n = f"dice_multiclass_rand_{red}"
        r = rng(n)
        dc(n, red, {"input": randn(r, 2, 3, 2, 2, scale=2), "target": mc_target(r, (2, 2, 2), 3)}, "multiclass")
        n = f"dice_binary_rand_{red}"
        r = rng(n)
        dc(n, red, {"input": randn(r, 2, 1, 2, 3, scale=2), "target": f32(r.integers(0, 2, (2, 1, 2, 3)))},
           "binary")
        n = f"dice_multilabel_rand_{red}"
        r = rng(n)
        dc(n, red, {"input": randn(r, 2, 3, 2, 2, scale=2), "target": f32(r.integers(0, 2, (2, 3, 2, 2)))},
           "multilabel")
    # worked examples (docs/semantics.md: dice), probabilities (from_logits=False)
    bp, bt = f32([[[0.9, 0.2, 0.6, 0.1]]]), f32([[[1, 0, 1, 0]]])
    dc("dice_worked_binary_probs_mean", "mean", {"input": bp, "target": bt}, "binary", from_logits=False,
       check={"value": 0.2105263, "grads": {"input": [-0.3185596, 0.2077562, -0.3185596, 0.2077562]}})
    dc("dice_worked_binary_probs_log_loss_mean", "mean", {"input": bp, "target": bt}, "binary",
       from_logits=False, log_loss=True, check={"value": 0.2363888})
    dc("dice_worked_binary_probs_smooth1_mean", "mean", {"input": bp, "target": bt}, "binary",
       from_logits=False, smooth=1.0, check={"value": 0.1379310})
    dc("dice_worked_binary_all_zero_target_mean", "mean", {"input": bp, "target": f32([[[0, 0, 0, 0]]])},
       "binary", from_logits=False, check={"value": 0.0, "grads": {"input": [0, 0, 0, 0]}})
    dc("dice_worked_binary_exact_0_1_tie_grad_mean", "mean",
       {"input": f32([[[1, 0, 0.5, 0.5]]]), "target": bt}, "binary", from_logits=False,
       check={"grads": {"input": [-0.0625, -0.0625, -0.3125, 0.1875]}})
    mp = f32([[[.7, .2, .1, .6], [.2, .7, .1, .2], [.1, .1, .8, .2]]])
    dc("dice_worked_multiclass_probs_none", "none", {"input": mp, "target": i64([[0, 1, 2, 0]])}, "multiclass",
       from_logits=False, check={"none": [0.2777778, 0.3636364, 0.2727273]})
    dc("dice_worked_multiclass_probs_mean", "mean", {"input": mp, "target": i64([[0, 1, 2, 0]])}, "multiclass",
       from_logits=False, check={"value": 0.3047138})
    dc("dice_worked_multiclass_absent_class_none", "none", {"input": mp, "target": i64([[0, 1, 0, 0]])},
       "multiclass", from_logits=False, check={"none": [0.3913043, 0.3636364, 0.0]})
    dc("dice_worked_multiclass_absent_class_mean", "mean", {"input": mp, "target": i64([[0, 1, 0, 0]])},
       "multiclass", from_logits=False, check={"value": 0.2516469})
    dc("dice_worked_multiclass_ignore255_mean", "mean", {"input": mp, "target": i64([[0, 1, 2, 255]])},
       "multiclass", from_logits=False, ignore_index=255, check={"value": 0.2666667})
    dc("dice_worked_multiclass_log_loss_mean", "mean", {"input": mp, "target": i64([[0, 1, 2, 0]])},
       "multiclass", from_logits=False, log_loss=True, check={"value": 0.3652871})
    dc("dice_worked_multiclass_smooth1_mean", "mean", {"input": mp, "target": i64([[0, 1, 2, 0]])},
       "multiclass", from_logits=False, smooth=1.0, check={"value": 0.1706349})
    # random edge cases
    n = "dice_multiclass_absent_class_sum"
    r = rng(n)
    dc(n, "sum", {"input": randn(r, 2, 4, 3, scale=2), "target": i64(r.integers(0, 3, (2, 3)))}, "multiclass")
    n = "dice_multiclass_ignore255_none"
    r = rng(n)
    y = mc_target(r, (2, 2, 3), 3)
    y[1, 1, 0] = 255
    y[0, 0, 2] = 255
    dc(n, "none", {"input": randn(r, 2, 3, 2, 3, scale=2), "target": y}, "multiclass", ignore_index=255)
    n = "dice_multiclass_log_loss_smooth1_mean"
    r = rng(n)
    dc(n, "mean", {"input": randn(r, 2, 3, 4, scale=2), "target": mc_target(r, (2, 4), 3)}, "multiclass",
       smooth=1.0, log_loss=True)
    n = "dice_multiclass_probs_exact_none"
    r = rng(n)
    p = softmax32(r.standard_normal((2, 3, 4)) * 2, 1)
    p[0, :, 1] = f32([1, 0, 0])
    p[1, :, 3] = f32([0, 0, 1])
    y = mc_target(r, (2, 4), 3)
    y[0, 1] = 0
    y[1, 3] = 1
    dc(n, "none", {"input": p, "target": y}, "multiclass", from_logits=False)
    n = "dice_binary_ignore255_mean"
    r = rng(n)
    y = f32(r.integers(0, 2, (2, 1, 3, 2)))
    y[0, 0, 1, 1] = 255
    y[1, 0, 2, 0] = 255
    dc(n, "mean", {"input": randn(r, 2, 1, 3, 2, scale=2), "target": y}, "binary", ignore_index=255)
    n = "dice_binary_all_zero_target_logits_mean"
    r = rng(n)
    dc(n, "mean", {"input": randn(r, 2, 1, 2, 2, scale=2), "target": f32(np.zeros((2, 1, 2, 2)))}, "binary",
       check={"value": 0.0})
    n = "dice_binary_smooth1_log_loss_sum"
    r = rng(n)
    dc(n, "sum", {"input": randn(r, 1, 1, 6, scale=2), "target": f32(r.integers(0, 2, (1, 1, 6)))}, "binary",
       smooth=1.0, log_loss=True)
    n = "dice_multilabel_probs_exact_mean"
    r = rng(n)
    p = uniform(r, 0, 1, 2, 2, 3)
    t = f32(r.integers(0, 2, (2, 2, 3)))
    p[0, 0, :] = t[0, 0, :]
    p[1, 1, 0] = 1 - t[1, 1, 0]
    dc(n, "mean", {"input": p, "target": t}, "multilabel", from_logits=False)
    n = "dice_multilabel_smooth1_none"
    r = rng(n)
    t = f32(r.integers(0, 2, (2, 3, 4)))
    t[:, 2, :] = 0  # an empty channel
    dc(n, "none", {"input": randn(r, 2, 3, 4, scale=2), "target": t}, "multilabel", smooth=1.0)
    n = "dice_multilabel_ignore255_mean"
    r = rng(n)
    t = f32(r.integers(0, 2, (2, 2, 4)))
    t[0, 1, 2] = 255
    t[1, 0, 0] = 255
    dc(n, "mean", {"input": randn(r, 2, 2, 4, scale=2), "target": t}, "multilabel", ignore_index=255)

    # half precision
    for dt, h in (("f16", h16), ("bf16", bh16)):
        for red in REDS:
            n = f"dice_multiclass_{dt}_rand_{red}"
            r = rng(n)
            dc(n, red, {"input": h(randn(r, 2, 3, 2, 3, scale=3)), "target": mc_target(r, (2, 2, 3), 3)},
               "multiclass")
        n = f"dice_binary_{dt}_rand_mean"
        r = rng(n)
        dc(n, "mean", {"input": h(randn(r, 2, 1, 3, 2, scale=3)), "target": h(r.integers(0, 2, (2, 1, 3, 2)))},
           "binary")
        n = f"dice_multilabel_{dt}_smooth1_none"
        r = rng(n)
        t = r.integers(0, 2, (2, 3, 4))
        t[:, 1, :] = 0  # an empty channel
        dc(n, "none", {"input": h(randn(r, 2, 3, 4, scale=3)), "target": h(t)}, "multilabel", smooth=1.0)
        n = f"dice_multiclass_{dt}_probs_none"
        r = rng(n)
        # softmax rounded to the half: a pixel's probabilities sum to 1 only up to the half's step
        dc(n, "none", {"input": h(softmax32(r.standard_normal((2, 3, 4)) * 2, 1)), "target": mc_target(r, (2, 4), 3)},
           "multiclass", from_logits=False)
        n = f"dice_multiclass_{dt}_ignore255_log_loss_mean"
        r = rng(n)
        y = mc_target(r, (2, 2, 3), 3)
        y[1, 0, 2] = 255
        dc(n, "mean", {"input": h(randn(r, 2, 3, 2, 3, scale=2)), "target": y}, "multiclass", ignore_index=255,
           log_loss=True)
        n = f"dice_multilabel_{dt}_ignore255_sum"
        r = rng(n)
        t = r.integers(0, 2, (2, 2, 4))
        t[0, 1, 2] = 255  # a half holds 255 exactly
        t[1, 0, 0] = 255
        dc(n, "sum", {"input": h(randn(r, 2, 2, 4, scale=2)), "target": h(t)}, "multilabel", ignore_index=255)
    # more pixels than a workgroup, an odd count (half values pack two to a 32-bit word)
    n = "dice_binary_f16_33x31_mean"
    r = rng(n)
    dc(n, "mean", {"input": h16(randn(r, 1, 1, 33, 31, scale=3)), "target": h16(r.integers(0, 2, (1, 1, 33, 31)))},
       "binary")
    # bf16 probabilities near 0 and 1 (its step below 1 is 2**-8); f16 ones with subnormals
    dc("dice_binary_bf16_probs_near_0_1_mean", "mean",
       {"input": bh16([[[0.999, 0.995, 0.001, 1e-10, 0.998, 0.5]]]), "target": bh16([[[1, 1, 0, 1, 0, 1]]])},
       "binary", from_logits=False)
    sub = 2.0 ** -24
    dc("dice_binary_f16_probs_subnormal_smooth1_none", "none",
       {"input": h16([[[sub, 3 * sub, 1023 * sub, 0.99976, 1, 0]]]), "target": h16([[[1, 0, 1, 1, 1, 0]]])},
       "binary", from_logits=False, smooth=1.0)
    # large logits: softmax and sigmoid saturate to exact 0 and 1
    dc("dice_multiclass_f16_large_logits_sum", "sum",
       {"input": h16([[[65504, -65504, 0, 30], [-65504, 60000, 0, 31], [0, 0, 65504, -1000]]]),
        "target": i64([[0, 1, 2, 1]])}, "multiclass")
    dc("dice_multilabel_bf16_large_logits_mean", "mean",
       {"input": bh16([[[1e30, -1e30, 1e5, -3e4], [100, -100, 0.5, -0.5]]]),
        "target": bh16([[[1, 0, 0, 1], [1, 1, 0, 0]]])}, "multilabel")
    # per-tensor dtypes: bf16 logits, f32 masks (with ignored pixels); f16 probabilities, bf16 masks
    n = "dice_binary_bf16_f32_target_ignore255_sum"
    r = rng(n)
    y = f32(r.integers(0, 2, (2, 1, 3, 2)))
    y[0, 0, 2, 1] = 255
    dc(n, "sum", {"input": bh16(randn(r, 2, 1, 3, 2, scale=2)), "target": y}, "binary", ignore_index=255)
    n = "dice_multilabel_bf16_f32_target_log_loss_mean"
    r = rng(n)
    dc(n, "mean", {"input": bh16(randn(r, 2, 3, 4, scale=2)), "target": f32(r.integers(0, 2, (2, 3, 4)))},
       "multilabel", log_loss=True)
    n = "dice_multilabel_f16_probs_bf16_target_none"
    r = rng(n)
    dc(n, "none", {"input": h16(uniform(r, 0, 1, 2, 2, 3)), "target": bh16(r.integers(0, 2, (2, 2, 3)))},
       "multilabel", from_logits=False)


# --------------------------------------------------------------------------
# poisson_nll / gaussian_nll
# --------------------------------------------------------------------------

def poisson_nll_cases():
    def f(t, red, log_input=True, full=False, eps=1e-8):
        return F.poisson_nll_loss(t["input"], t["target"], log_input=log_input, full=full, eps=p32(eps),
                                  reduction=red)

    def s(red, log_input=True, full=False, eps=1e-8):
        return (f"F.poisson_nll_loss(x, y, log_input={log_input}, full={full}, eps={eps}, "
                f"reduction='{red}')")

    def pc(name, red, tensors, log_input=True, full=False, eps=1e-8, check=None, note=""):
        prm = {}
        if not log_input:
            prm["log_input"] = False
        if full:
            prm["full"] = True
        if eps != 1e-8:
            prm["eps"] = eps
        return add_case(name, "poisson_nll", red, prm, tensors,
                        lambda t: f(t, red, log_input, full, eps), s(red, log_input, full, eps) + note,
                        check=check)

    def counts(r, rate):
        return f32(r.poisson(np.asarray(rate, dtype=np.float64)))

    # log rates (the default)
    for red in REDS:
        n = f"poisson_nll_rand_{red}"
        r = rng(n)
        x = randn(r, 3, 4)
        pc(n, red, {"input": x, "target": counts(r, np.exp(x.astype(np.float64)))})
    # rates (log_input=False)
    for red in REDS:
        n = f"poisson_nll_rate_{red}"
        r = rng(n)
        x = uniform(r, 0.05, 4, 3, 4)
        pc(n, red, {"input": x, "target": counts(r, x)}, log_input=False)
    # worked examples: Stirling's term only where y > 1
    pc("poisson_nll_worked_full_none", "none", {"input": f32([-1, 0.5, 0.5]), "target": f32([3, 1, 0])},
       full=True, check={"none": [5.1319610, 1.1487213, 1.6487213],
                         "grads": {"input": [-2.6321206, 0.6487213, 1.6487213]}})
    pc("poisson_nll_worked_rate_zero_input_none", "none",
       {"input": f32([0, 0, 2]), "target": f32([0, 2, 2])}, log_input=False,
       check={"none": [0.0, 36.8413615, 0.6137056]}, note="  # x = 0: eps keeps log finite")
    # targets around 1 with full=True: 0, <= 1, exactly 1, the next f32 above 1, > 1
    y = f32([0, 0.25, 0.5, 1, np.nextafter(np.float32(1), np.float32(2)), 1.5, 2, 3, 10, 40])
    x = f32([0.3, -0.7, 1.2, 0.0, 0.1, -0.2, 0.8, 1.1, 2.3, 3.7])
    pc("poisson_nll_full_targets_le1_gt1_none", "none", {"input": x, "target": y}, full=True)
    n = "poisson_nll_full_mean"
    r = rng(n)
    x = randn(r, 4, 5)
    pc(n, "mean", {"input": x, "target": counts(r, 3 * np.exp(x.astype(np.float64)))}, full=True)
    n = "poisson_nll_full_sum"
    r = rng(n)
    x = randn(r, 2, 6)
    y = counts(r, 2 * np.exp(x.astype(np.float64)))
    y[0, :3] = f32([0, 1, 0.5])
    pc(n, "sum", {"input": x, "target": y}, full=True)
    n = "poisson_nll_rate_full_none"
    r = rng(n)
    x = uniform(r, 0.05, 6, 2, 5)
    y = counts(r, x)
    y[1, 0] = 0
    y[1, 1] = 1
    pc(n, "none", {"input": x, "target": y}, log_input=False, full=True)
    n = "poisson_nll_rate_full_mean"
    r = rng(n)
    x = uniform(r, 0.05, 6, 3, 3)
    pc(n, "mean", {"input": x, "target": counts(r, x)}, log_input=False, full=True)
    # rates of exactly 0: eps decides the value and the gradient
    n = "poisson_nll_rate_zero_input_mean"
    r = rng(n)
    x = uniform(r, 0, 3, 2, 4)
    y = counts(r, x + 0.5)
    x[0, 0], y[0, 0] = 0, 0
    x[0, 1], y[0, 1] = 0, 1
    x[1, 2], y[1, 2] = 0, 4
    pc(n, "mean", {"input": x, "target": y}, log_input=False)
    n = "poisson_nll_rate_zero_input_eps_sum"
    r = rng(n)
    x = uniform(r, 0, 3, 2, 4)
    y = counts(r, x + 0.5)
    x[0, 0], y[0, 0] = 0, 0
    x[0, 3], y[0, 3] = 0, 2
    x[1, 1], y[1, 1] = 0, 5
    pc(n, "sum", {"input": x, "target": y}, log_input=False, eps=1e-3)
    n = "poisson_nll_eps_unused_log_input_sum"
    r = rng(n)
    x = randn(r, 6)
    pc(n, "sum", {"input": x, "target": counts(r, np.exp(x.astype(np.float64)))}, eps=0.5,
       note="  # eps only enters with log_input=False")
    # shapes
    pc("poisson_nll_single_element_mean", "mean", {"input": f32([0.625]), "target": f32([3])})
    n = "poisson_nll_1d_sum"
    r = rng(n)
    x = randn(r, 7)
    pc(n, "sum", {"input": x, "target": counts(r, np.exp(x.astype(np.float64)))})
    n = "poisson_nll_3d_none"
    r = rng(n)
    x = uniform(r, 0.05, 5, 2, 3, 4)
    pc(n, "none", {"input": x, "target": counts(r, x)}, log_input=False)
    n = "poisson_nll_3d_full_mean"
    r = rng(n)
    x = randn(r, 2, 3, 4)
    pc(n, "mean", {"input": x, "target": counts(r, 2 * np.exp(x.astype(np.float64)))}, full=True)
    n = "poisson_nll_large_full_mean"
    r = rng(n)
    x = randn(r, 1000)
    pc(n, "mean", {"input": x, "target": counts(r, 3 * np.exp(x.astype(np.float64)))}, full=True)
    # half precision (counts up to 256 are exact in both halves)
    for dt, h in (("f16", h16), ("bf16", bh16)):
        n = f"poisson_nll_{dt}_rand_mean"
        r = rng(n)
        x = h(randn(r, 3, 5))
        pc(n, "mean", {"input": x, "target": h(counts(r, np.exp(x.values.astype(np.float64))))})
        n = f"poisson_nll_{dt}_rate_full_none"
        r = rng(n)
        x = h(uniform(r, 0.05, 6, 2, 5))
        y = counts(r, x.values)
        y[1, 0] = 0
        y[1, 1] = 1
        pc(n, "none", {"input": x, "target": h(y)}, log_input=False, full=True)
    # per-tensor dtypes: bf16 log rates, f32 counts
    n = "poisson_nll_bf16_f32_target_full_sum"
    r = rng(n)
    x = bh16(randn(r, 2, 6))
    y = counts(r, 2 * np.exp(x.values.astype(np.float64)))
    y[0, :3] = f32([0, 1, 0.5])
    pc(n, "sum", {"input": x, "target": y}, full=True)
    # f16 subnormal rates next to eps = 1e-8 (log(x + eps)); rates of exactly 0
    sub = 2.0 ** -24
    pc("poisson_nll_f16_subnormal_rates_mean", "mean",
       {"input": h16([sub, 3 * sub, 1023 * sub, 2.0 ** -14, 0, 0, 1.5, 65504]),
        "target": h16([0, 1, 2, 1, 0, 3, 2, 65504])}, log_input=False)
    # large log rates: exp(11) ~ 6e4 and, in bf16, exp(80) ~ 6e34
    pc("poisson_nll_f16_large_log_input_none", "none",
       {"input": h16([11, -11, 10.5, -65504, 0]), "target": h16([60000, 0, 2048, 0, 1])})
    pc("poisson_nll_bf16_large_log_input_full_sum", "sum",
       {"input": bh16([80, -80, 40, -1e30, 0.5]), "target": bh16([1e30, 0, 3e17, 0, 1])}, full=True)


def gaussian_nll_cases():
    def f(t, red, full=False, eps=1e-6):
        return F.gaussian_nll_loss(t["input"], t["target"], t["var"], full=full, eps=p32(eps), reduction=red)

    def s(red, vshape, ishape, full=False, eps=1e-6):
        vs = tuple(vshape)
        if vs == tuple(ishape):
            what = "the input's shape"
        elif vs == tuple(ishape[:-1]):
            what = "the input's shape without its last dim; torch unsqueezes it"
        else:
            what = "the input's shape with its last dim 1"
        return (f"F.gaussian_nll_loss(x, y, var, full={full}, eps={eps}, reduction='{red}')"
                f"  # var {vs}: {what}")

    def gc(name, red, tensors, full=False, eps=1e-6, check=None):
        prm = {}
        if full:
            prm["full"] = True
        if eps != 1e-6:
            prm["eps"] = eps
        return add_case(name, "gaussian_nll", red, prm, tensors, lambda t: f(t, red, full, eps),
                        s(red, tensors["var"].shape, tensors["input"].shape, full, eps), check=check)

    def xyv(r, shape, vshape, lo=0.1, hi=3.0):
        return {"input": randn(r, *shape), "target": randn(r, *shape), "var": uniform(r, lo, hi, *vshape)}

    # var of the input's shape
    for red in REDS:
        n = f"gaussian_nll_rand_{red}"
        gc(n, red, xyv(rng(n), (3, 4), (3, 4)))
    # var with the last dim 1
    for red in REDS:
        n = f"gaussian_nll_var_last1_{red}"
        gc(n, red, xyv(rng(n), (3, 4), (3, 1)))
    # var without the last dim
    for red in REDS:
        n = f"gaussian_nll_var_rows_{red}"
        gc(n, red, xyv(rng(n), (3, 4), (3,)))
    # square input: a var (N,) is one per row (unsqueezed to (N, 1)), not broadcast over the columns
    n = "gaussian_nll_square_var_rows_none"
    gc(n, "none", xyv(rng(n), (3, 3), (3,)))
    # worked examples
    wv = f32([0.25, 1, 2])
    gc("gaussian_nll_worked_none", "none", {"input": WX, "target": WY, "var": wv},
       check={"none": [-0.1931472, 0.0, 1.3465736], "grads": {"input": [-2.0, 0.0, -1.0]}})
    gc("gaussian_nll_worked_mean", "mean", {"input": WX, "target": WY, "var": wv},
       check={"value": 0.3844755, "grads": {"input": [-2 / 3, 0.0, -1 / 3]}})
    gc("gaussian_nll_worked_full_sum", "sum", {"input": WX, "target": WY, "var": wv}, full=True,
       check={"value": 1.1534264 + 3 * 0.9189385})
    # full
    n = "gaussian_nll_full_none"
    gc(n, "none", xyv(rng(n), (2, 5), (2, 1)), full=True)
    n = "gaussian_nll_full_mean"
    gc(n, "mean", xyv(rng(n), (4, 3), (4, 3)), full=True)
    # var below eps (clamped; exactly 0 too)
    vx = f32([1.0, 0.5, 0.001, -0.002, 0.0, 2.0, 1e-3, 0.25])
    vy = f32([0.0, 0.5, 0.0, 0.0, 0.0, 1.0, 0.0, 0.5])
    vv = f32([0.0, 0.0, 1e-9, 1e-7, 9.9e-7, 1e-6, 1.1e-6, 0.5])
    gc("gaussian_nll_var_below_eps_none", "none", {"input": vx, "target": vy, "var": vv})
    gc("gaussian_nll_var_below_eps_mean", "mean", {"input": vx, "target": vy, "var": vv})
    n = "gaussian_nll_eps_var_below_eps_sum"
    r = rng(n)
    v = uniform(r, 0.001, 0.05, 2, 4)
    v[0, 0] = 0
    v[1, 3] = 0.01
    gc(n, "sum", {"input": randn(r, 2, 4, scale=0.2), "target": randn(r, 2, 4, scale=0.2), "var": v}, eps=0.01)
    # shapes
    gc("gaussian_nll_single_element_mean", "mean",
       {"input": f32([0.75]), "target": f32([-0.5]), "var": f32([0.3])})
    gc("gaussian_nll_single_element_scalar_var_sum", "sum",
       {"input": f32([0.75]), "target": f32([-0.5]), "var": f32(0.3)})
    n = "gaussian_nll_1d_scalar_var_mean"
    r = rng(n)
    gc(n, "mean", {"input": randn(r, 6), "target": randn(r, 6), "var": f32(r.uniform(0.1, 3))})
    n = "gaussian_nll_1d_var1_sum"
    gc(n, "sum", xyv(rng(n), (6,), (1,)))
    n = "gaussian_nll_1d_none"
    gc(n, "none", xyv(rng(n), (5,), (5,)))
    n = "gaussian_nll_3d_none"
    gc(n, "none", xyv(rng(n), (2, 3, 4), (2, 3, 4)))
    n = "gaussian_nll_3d_var_last1_mean"
    gc(n, "mean", xyv(rng(n), (2, 3, 4), (2, 3, 1)))
    n = "gaussian_nll_3d_var_rows_sum"
    gc(n, "sum", xyv(rng(n), (2, 3, 4), (2, 3)), full=True)
    n = "gaussian_nll_large_full_mean"
    gc(n, "mean", xyv(rng(n), (8, 125), (8, 1)), full=True)
    # half precision
    def half_xyv(d, *hs):
        return {k: h(v) for (k, v), h in zip(d.items(), hs)}

    n = "gaussian_nll_f16_rand_none"
    gc(n, "none", half_xyv(xyv(rng(n), (3, 4), (3, 4)), h16, h16, h16))
    n = "gaussian_nll_bf16_var_last1_mean"
    gc(n, "mean", half_xyv(xyv(rng(n), (3, 4), (3, 1)), bh16, bh16, bh16))
    n = "gaussian_nll_bf16_full_sum"
    gc(n, "sum", half_xyv(xyv(rng(n), (2, 5), (2, 5)), bh16, bh16, bh16), full=True)
    n = "gaussian_nll_f16_var_rows_full_mean"
    gc(n, "mean", half_xyv(xyv(rng(n), (3, 4), (3,)), h16, h16, h16), full=True)
    # per-tensor dtypes: bf16 input and target, f32 var; an f16 input, f32 target, bf16 var
    n = "gaussian_nll_bf16_f32_var_rows_sum"
    gc(n, "sum", half_xyv(xyv(rng(n), (3, 4), (3,)), bh16, bh16, f32))
    n = "gaussian_nll_f16_f32_bf16_none"
    gc(n, "none", half_xyv(xyv(rng(n), (2, 4), (2, 4)), h16, f32, bh16))
    # f16 subnormal variances on both sides of eps = 1e-6 (16 * 2**-24 < eps < 17 * 2**-24),
    # where a flushed one would be clamped to eps
    sub = 2.0 ** -24
    for red in ("none", "mean"):
        gc(f"gaussian_nll_f16_subnormal_var_{red}", red,
           {"input": h16([0.001, -0.002, 0.003, 0.0005, 0.01, 2.0 ** -14, 0.25, 0]),
            "target": h16([0, 0, 0.001, 0, 0.005, 0, 0.25, 0]),
            "var": h16([sub, 16 * sub, 17 * sub, 20 * sub, 1023 * sub, 2.0 ** -14, 0.5, 0])})


# --------------------------------------------------------------------------

def main():
    regression()
    log_cosh_cases()
    quantile_cases()
    bce_cases()
    cross_entropy_cases()
    nll_cases()
    kl_cases()
    sigmoid_focal_cases()
    softmax_focal_cases()
    cosine_cases()
    triplet_cases()
    dice_cases()
    poisson_nll_cases()
    gaussian_nll_cases()

    doc = {
        "generator": "scripts/make_fixtures.py",
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "kornia": kornia.__version__,
            "segmentation_models_pytorch": smp.__version__,
            "numpy": np.__version__,
        },
        "cases": CASES,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    # one case per line keeps diffs readable
    text = text.replace(',{"name":', ',\n{"name":').replace('"cases":[{"name":', '"cases":[\n{"name":')
    with open(OUT, "w") as fh:
        fh.write(text + "\n")
    json.loads(text)
    print(f"wrote {OUT}: {len(CASES)} cases, {len(text)} bytes")


if __name__ == "__main__":
    main()
