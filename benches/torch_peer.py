#!/usr/bin/env python3
"""Times PyTorch's own losses on the batches `wgpu-loss bench` times.

Each loss of the wgpu-loss catalog runs at the same sizes and on tensors of the
same shapes as src/cli/synthetic.rs makes (rows of 1000 classes for the softmax
losses, 256-wide embeddings for the pair losses, (4, C, pixels) for dice),
with the reference functions of docs/semantics.md, reduction
'mean', the inputs already on the device:

  eager     the function as written;
  compile   the same function through torch.compile.

--calls picks what a timed call is:

  forward   the loss value (the default);
  fused     the loss value and, through torch.autograd.grad, its gradient
            with respect to every float input that wgpu-loss's fused call
            returns a gradient for (the input; also x2 of cosine_embedding,
            positive and negative of triplet_margin), as `wgpu-loss bench
            --calls fused` times it (upstream 1). Those inputs are made
            leaves that require gradients before the clock starts. Its
            records carry "call": "fused" and count bytes as wgpu-loss
            counts them for that call (fused_bytes), so that GB/s compare.

On CUDA the time of a call is taken with CUDA events around it, after a warm-up,
and the median of repeated calls is reported (like `wgpu-loss bench`, which
reads GPU timestamps). Without CUDA it runs on the CPU and takes wall-clock
times, and says so in every record ("timing": "wall").

    python3 benches/torch_peer.py --loss mse,cross_entropy --sizes 65536 --json
    python3 benches/torch_peer.py --device cpu --modes eager --calls forward,fused --json

One JSON record per line with --json, else a table. Needs torch only;
torchvision and segmentation_models_pytorch are used where installed, else
their formulas are written out in torch. Not used by CI.
"""

import argparse
import json
import math
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

warnings.filterwarnings("ignore", message="reduction: .mean. divides the total loss")

NAMES = [
    "mse", "l1", "huber", "smooth_l1", "log_cosh", "quantile", "bce",
    "bce_with_logits", "sigmoid_focal", "kl_div", "poisson_nll", "gaussian_nll",
    "cross_entropy", "nll",
    "softmax_focal", "cosine_embedding", "triplet_margin", "dice",
]
CLASSES = 1000  # synthetic::CLASSES
DIM = 256  # synthetic::DIM
KL_WIDTH = 64
DICE_BATCH, DICE_CLASSES = 4, 4
ROUNDTRIP_N = 1000  # bench::ROUNDTRIP_N
LN2 = math.log(2.0)


def default_sizes():
    return [1 << k for k in range(12, 27, 2)]


def parse_size(s):
    s = s.strip()
    if "^" in s:
        b, e = s.split("^")
        return int(b) ** int(e)
    return int(float(s))


def batch(name, n, device, gen):
    """Tensors of the shapes src/cli/synthetic.rs gives for about n elements."""
    n = max(n, 1)

    def unif(shape, lo, hi):
        return torch.rand(shape, generator=gen) * (hi - lo) + lo

    def bern(shape, p):
        return (torch.rand(shape, generator=gen) < p).float()

    if name == "bce":
        t = [unif((n,), 0.0, 1.0), bern((n,), 0.5)]
    elif name in ("bce_with_logits", "sigmoid_focal"):
        t = [unif((n,), -8.0, 8.0), bern((n,), 0.3)]
    elif name == "kl_div":
        rows = -(-n // KL_WIDTH)
        x = torch.log_softmax(unif((rows, KL_WIDTH), -3.0, 3.0), dim=1)
        y = torch.softmax(unif((rows, KL_WIDTH), -3.0, 3.0), dim=1)
        t = [x, y]
    elif name == "poisson_nll":
        # Log rates and counts near them, as src/cli/synthetic.rs draws them.
        rates = unif((n,), 0.05, 8.0)
        counts = (rates + unif((n,), -2.0, 2.0)).clamp(min=0.0).round()
        t = [rates.log(), counts]
    elif name == "gaussian_nll":
        t = [unif((n,), -3.0, 3.0), unif((n,), -3.0, 3.0), unif((n,), 0.01, 4.0)]
    elif name in ("cross_entropy", "nll", "softmax_focal"):
        rows = -(-n // CLASSES)
        t = [
            unif((rows, CLASSES), -6.0, 6.0),
            torch.randint(0, CLASSES, (rows,), generator=gen),
        ]
    elif name in ("cosine_embedding", "triplet_margin"):
        rows = -(-n // DIM)
        k = 2 if name == "cosine_embedding" else 3
        t = [unif((rows, DIM), -1.0, 1.0) for _ in range(k)]
        if name == "cosine_embedding":
            # wgpu-loss without labels: every pair is similar.
            t.append(torch.ones(rows))
    elif name == "dice":
        pixels = -(-n // (DICE_BATCH * DICE_CLASSES))
        t = [
            unif((DICE_BATCH, DICE_CLASSES, pixels), -4.0, 4.0),
            torch.randint(0, DICE_CLASSES, (DICE_BATCH, pixels), generator=gen),
        ]
    else:
        t = [unif((n,), -3.0, 3.0), unif((n,), -3.0, 3.0)]
    return [x.to(device) for x in t]


def sigmoid_focal(x, y, alpha=0.25, gamma=2.0):
    try:
        from torchvision.ops import sigmoid_focal_loss

        return sigmoid_focal_loss(x, y, alpha=alpha, gamma=gamma, reduction="mean")
    except ImportError:
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        p_t = p * y + (1 - p) * (1 - y)
        loss = ce * (1 - p_t) ** gamma
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
        return loss.mean()


def softmax_focal(x, y, gamma=2.0):
    logp = torch.log_softmax(x, dim=1).gather(1, y[:, None]).squeeze(1)
    return ((1 - logp.exp()) ** gamma * -logp).mean()


def dice_formula(x, y, eps=1e-7):
    """smp DiceLoss(mode='multiclass', from_logits=True, smooth=0): dims (0, 2)."""
    bs, c = x.shape[0], x.shape[1]
    p = x.log_softmax(dim=1).exp().view(bs, c, -1)
    t = F.one_hot(y.view(bs, -1), c).permute(0, 2, 1).to(p.dtype)
    inter = (p * t).sum(dim=(0, 2))
    card = (p + t).sum(dim=(0, 2))
    score = 2.0 * inter / card.clamp_min(eps)
    loss = (1.0 - score) * (t.sum(dim=(0, 2)) > 0).to(p.dtype)
    return loss.mean()


def dice_fn():
    try:
        from segmentation_models_pytorch.losses import DiceLoss

        return DiceLoss(mode="multiclass", from_logits=True), "smp.losses.DiceLoss"
    except ImportError:
        return dice_formula, "smp's formula in torch"


def loss_fn(name):
    """(callable on the batch's tensors, what it is)."""
    q = 0.5
    table = {
        "mse": (F.mse_loss, "F.mse_loss"),
        "l1": (F.l1_loss, "F.l1_loss"),
        "huber": (lambda x, y: F.huber_loss(x, y, delta=1.0), "F.huber_loss"),
        "smooth_l1": (lambda x, y: F.smooth_l1_loss(x, y, beta=1.0), "F.smooth_l1_loss"),
        "log_cosh": (
            lambda x, y: ((x - y).abs() + F.softplus(-2.0 * (x - y).abs()) - LN2).mean(),
            "stable log-cosh in torch",
        ),
        "quantile": (
            lambda x, y: torch.maximum((q - 1.0) * (y - x), q * (y - x)).mean(),
            "pinball q=0.5 in torch",
        ),
        "bce": (F.binary_cross_entropy, "F.binary_cross_entropy"),
        "bce_with_logits": (F.binary_cross_entropy_with_logits, "F.binary_cross_entropy_with_logits"),
        "sigmoid_focal": (sigmoid_focal, "torchvision sigmoid_focal_loss"),
        "kl_div": (lambda x, y: F.kl_div(x, y, reduction="mean"), "F.kl_div"),
        "poisson_nll": (F.poisson_nll_loss, "F.poisson_nll_loss"),
        "gaussian_nll": (F.gaussian_nll_loss, "F.gaussian_nll_loss"),
        "cross_entropy": (F.cross_entropy, "F.cross_entropy"),
        "nll": (F.nll_loss, "F.nll_loss"),
        "softmax_focal": (softmax_focal, "CE-consistent focal in torch"),
        "cosine_embedding": (F.cosine_embedding_loss, "F.cosine_embedding_loss"),
        "triplet_margin": (F.triplet_margin_loss, "F.triplet_margin_loss"),
        "dice": dice_fn(),
    }
    return table[name]


def grad_inputs(name):
    """Indices of the batch's tensors that wgpu-loss's fused call returns a
    gradient for (src/gradients.rs): the input always; x2 of
    cosine_embedding; the positive and negative of triplet_margin."""
    if name == "cosine_embedding":
        return [0, 1]
    if name == "triplet_margin":
        return [0, 1, 2]
    return [0]


def fused_bytes(name, args):
    """Bytes `wgpu-loss bench` counts for the fused call on this batch
    (src/cli/bench.rs, fused_as and must_read): every input read once at 4
    bytes an element (class indices are 32-bit there; nll reads one value
    and one index per row; cosine_embedding runs without labels), then the
    value and every gradient written once at 4 bytes an element."""
    if name == "nll":
        read = 8 * args[1].numel()
    else:
        inputs = args[:2] if name == "cosine_embedding" else args
        read = sum(4 * t.numel() for t in inputs)
    written = 1 + sum(args[i].numel() for i in grad_inputs(name))
    return read + 4 * written


def with_grad(name, args):
    """The batch with the tensors `grad_inputs` names as fresh leaves that
    require gradients."""
    wrt = grad_inputs(name)
    return [t.detach().clone().requires_grad_(True) if i in wrt else t for i, t in enumerate(args)]


def fused(fn, name):
    """The loss and its gradients in one call; returns the value."""
    wrt = grad_inputs(name)

    def call(*args):
        value = fn(*args)
        torch.autograd.grad(value, [args[i] for i in wrt])
        return value

    return call


class Clock:
    """CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def time(self, fn, args):
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn(*args)
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t = time.perf_counter()
        fn(*args)
        return (time.perf_counter() - t) * 1e3


def median_ms(clock, fn, args, warmup, min_runs, max_runs, seconds):
    for _ in range(warmup):
        fn(*args)
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < seconds):
        times.append(clock.time(fn, args))
    return statistics.median(times), len(times)


def roundtrip_ms(fn, args, min_runs=20, max_runs=200, seconds=0.2):
    """A blocking call on a small batch, the scalar read back to the host."""
    fn(*args).item()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs or time.perf_counter() - start < seconds):
        t = time.perf_counter()
        fn(*args).item()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--loss", default=",".join(NAMES), help="comma-separated losses [all]")
    ap.add_argument("--sizes", default=None, help="comma-separated sizes, numbers or 2^k [2^12..2^26 by 4]")
    ap.add_argument("--modes", default="eager,compile", help="eager, compile or both")
    ap.add_argument("--calls", default="forward", help="forward, fused or both [forward]")
    ap.add_argument("--device", default=None, help="cuda or cpu [cuda if available]")
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--max-runs", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for PyTorch [its default]")
    ap.add_argument("--json", action="store_true", help="one JSON record per line")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    # Every size of every loss compiles once or twice (static, then dynamic
    # shapes); functions like F.mse_loss share one wrapper code object, whose
    # default recompile limit (8) would send later losses back to eager.
    for knob in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, knob):
            setattr(torch._dynamo.config, knob, 64)

    names = [s.strip() for s in a.loss.split(",") if s.strip()]
    for name in names:
        if name not in NAMES:
            sys.exit(f"error: unknown loss `{name}` (one of: {', '.join(NAMES)})")
    sizes = [parse_size(s) for s in a.sizes.split(",")] if a.sizes else default_sizes()
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    calls = [c.strip() for c in a.calls.split(",") if c.strip()]
    for call in calls:
        if call not in ("forward", "fused"):
            sys.exit(f"error: unknown call `{call}` (forward or fused)")
    call_col = "fused" in calls
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    clock = Clock(device)
    timing = "cuda_events" if clock.cuda else "wall"
    dev_name = torch.cuda.get_device_name(device) if clock.cuda else "cpu"
    note = lambda s: print(s, file=sys.stderr, flush=True)
    note(
        f"torch {torch.__version__} on {dev_name}: "
        + ("CUDA events, median of repeated calls" if clock.cuda else "no CUDA: CPU wall-clock times")
    )
    gen = torch.Generator().manual_seed(1)
    if not a.json:
        call_head = f" {'call':<7}" if call_col else ""
        print(f"{'loss':<16} {'n':>9}{call_head} {'mode':<8} {'ms':>10} {'GB/s':>9} {'rt ms':>8}")
    for name in names:
        fn, what = loss_fn(name)
        compiled = None
        torch._dynamo.reset()
        small = batch(name, ROUNDTRIP_N, device, gen)
        for size in sizes:
            try:
                args = batch(name, size, device, gen)
            except RuntimeError as e:  # out of memory
                note(f"skipped {name} at {size}: {e}")
                continue
            n = args[0].numel()
            for call, mode in [(c, m) for c in calls for m in modes]:
                if call == "fused":
                    nbytes = fused_bytes(name, args)
                    call_args, call_small = with_grad(name, args), with_grad(name, small)
                else:
                    nbytes = sum(t.numel() * t.element_size() for t in args) + 4
                    call_args, call_small = args, small
                try:
                    if mode == "compile":
                        if compiled is None:
                            compiled = torch.compile(fn)
                        f = compiled
                    else:
                        f = fn
                    if call == "fused":
                        f = fused(f, name)
                    warmup = 3 if mode == "compile" else 1
                    ms, runs = median_ms(clock, f, call_args, warmup, a.min_runs, a.max_runs, a.seconds)
                    rt = roundtrip_ms(f, call_small)
                except Exception as e:  # a compile failure must not stop the others
                    note(f"skipped {name} at {size} ({call}, {mode}): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                    continue
                finally:
                    del call_args
                rec = {
                    "loss": name,
                    "mode": mode,
                    "size": size,
                    "n": n,
                    "shape": list(args[0].shape),
                    "bytes": nbytes,
                    "ms": ms,
                    "gbps": nbytes / (ms * 1e6),
                    "roundtrip_ms": rt,
                    "runs": runs,
                    "timing": timing,
                    "device": dev_name,
                    "torch": torch.__version__,
                    "function": what,
                }
                if call == "fused":
                    rec["call"] = "fused"
                if a.json:
                    print(json.dumps(rec), flush=True)
                else:
                    call_cell = f" {call:<7}" if call_col else ""
                    print(f"{name:<16} {n:>9}{call_cell} {mode:<8} {ms:>10.4f} {rec['gbps']:>9.3f} {rt:>8.3f}", flush=True)
            del args
            if clock.cuda:
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
