"""MAGIC against an exact metagradient in PyTorch (issue 19, item 3): scores and time, side by side.

PyTorch replays the run attrib trained - the same data, the same initial parameters (made here
with torch's default init and given to attrib as ``train.init_from``), attrib's own batch plan and
learning rates (``Run.batch_plan``, ``Run.learning_rates``) - unrolled through ``torch.autograd``
with ``create_graph=True``, SGD with momentum and coupled weight decay exactly as attrib's
trainer (MATH.md E1: ``g_t = sum_{i in B_t} w_i grad l_i / |B_t| + lambda theta``,
``v = mu v + g``, ``theta -= lr_t v``), and differentiates the targets' margins at the last step
in the data weights ``w`` (all ones), the targets batched with ``is_grads_batched``. In float64
the two score matrices must agree to a relative 1e-5 (of the largest score): an external check of
MAGIC as well as a timing.

    python scripts/magic_vs_torch.py                      # digits MLP, 1 and 64 targets
    python scripts/magic_vs_torch.py --hidden 512 512     # the 64-512-512-10 MLP
    python scripts/magic_vs_torch.py --epochs 2 --targets 1 4   # quick

Needs torch, numpy, safetensors and the attrib package (``pip install ./python``).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import attrib


class Mlp(torch.nn.Module):
    """attrib's ``mlp`` with GELU: ``layers.{i}.weight`` ``[out, in]`` and ``layers.{i}.bias``."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])
        )


def forward(params, x):
    """The MLP on a flat list of parameters ``[w0, b0, w1, b1, ...]``."""
    n = len(params) // 2
    for i in range(n):
        x = x @ params[2 * i].T + params[2 * i + 1]
        if i + 1 < n:
            x = torch.nn.functional.gelu(x)
    return x


def margins(logits, y):
    """attrib's margin: the true class's logit minus the log-sum-exp of the others."""
    true = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], float("-inf"))
    return true - torch.logsumexp(others, 1)


def train(params0, x, y, w, plan, lrs, mu, wd, create_graph):
    """attrib's trainer, unrolled: returns the last parameters (a graph of ``w`` when asked)."""
    params = [p.clone().requires_grad_(True) if create_graph else p.clone() for p in params0]
    vel = [torch.zeros_like(p) for p in params]
    for idx, lr in zip(plan, lrs):
        idx = torch.as_tensor(idx)
        if not create_graph:
            for p in params:
                p.requires_grad_(True)
        losses = torch.nn.functional.cross_entropy(forward(params, x[idx]), y[idx], reduction="none")
        obj = (w[idx] * losses).sum() / len(idx)
        grads = torch.autograd.grad(obj, params, create_graph=create_graph)
        new_params, new_vel = [], []
        for p, g, v in zip(params, grads, vel):
            g = g + wd * p
            v = mu * v + g
            new_vel.append(v)
            new_params.append(p - lr * v)
        params, vel = new_params, new_vel
        if not create_graph:
            params = [p.detach() for p in params]
            vel = [v.detach() for v in vel]
    return params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[128, 128])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--targets", type=int, nargs="+", default=[1, 64])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = {
        "data": {"source": "digits", "test_fraction": 0.2, "standardize": False, "scale": 0.0625},
        "model": {"kind": "mlp", "hidden": args.hidden, "activation": "gelu"},
        "optim": {"kind": "sgd", "lr": 0.03, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"kind": "cosine"},
        "train": {"epochs": args.epochs, "batch_size": 64, "seed": 0, "precision": "f64"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = Mlp([64, *args.hidden, 10])
        init = Path(tmp) / "init.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(init))
        cfg["train"]["init_from"] = str(init)
        start = time.perf_counter()
        run = attrib.train(cfg, Path(tmp) / "run", threads=args.threads)
        attrib_train = time.perf_counter() - start
        x, y = (torch.from_numpy(a) for a in run.dataset("train"))
        x = x.double()
        xt, yt = (torch.from_numpy(a) for a in run.dataset("test"))
        xt = xt.double()
        plan, lrs = run.batch_plan(), run.learning_rates()
        # attrib reads the float32 init exactly into its float64 run; so does the replay.
        params0 = [p.detach().double() for p in model.parameters()]
        mu, wd = cfg["optim"]["momentum"], cfg["optim"]["weight_decay"]
        n = run.n_train
        start = time.perf_counter()
        last = train(params0, x, y, torch.ones(n, dtype=torch.float64), plan, lrs, mu, wd, False)
        torch_train = time.perf_counter() - start
        # The replay reaches attrib's parameters (to rounding): the same run on both sides.
        out = margins(forward(last, xt), yt).detach().numpy()
        replay = float(np.max(np.abs(out - run.outputs("margin", "test"))))
        print(f"digits MLP 64-{'-'.join(map(str, args.hidden))}-10, {len(plan)} steps, f64; "
              f"torch {torch.__version__}, {args.threads} threads")
        print(f"training: attrib {attrib_train:.2f} s (whole command), torch {torch_train:.2f} s "
              f"(loop); replayed test margins within {replay:.1e} of attrib's")
        print()
        print("| targets | attrib MAGIC s | torch unrolled s | attrib / torch | "
              "attrib x its training | torch x its training | max rel. difference |")
        print("|---|---|---|---|---|---|---|")
        for k in args.targets:
            targets = list(range(k))
            start = time.perf_counter()
            tau = run.attribute("magic", targets=targets, threads=args.threads).astype(np.float64)
            attrib_s = time.perf_counter() - start
            start = time.perf_counter()
            w = torch.ones(n, dtype=torch.float64, requires_grad=True)
            last = train(params0, x, y, w, plan, lrs, mu, wd, True)
            f = margins(forward(last, xt[:k]), yt[:k])
            (grads,) = torch.autograd.grad(
                f, w, grad_outputs=torch.eye(k, dtype=torch.float64), is_grads_batched=True
            )
            torch_s = time.perf_counter() - start
            ref = grads.numpy()
            rel = float(np.max(np.abs(tau - ref)) / np.max(np.abs(ref)))
            print(f"| {k} | {attrib_s:.2f} | {torch_s:.2f} | {attrib_s / torch_s:.2f} | "
                  f"{attrib_s / attrib_train:.2f} | {torch_s / torch_train:.2f} | {rel:.1e} |")
            assert rel < 1e-5, f"MAGIC and the unrolled PyTorch metagradient differ by {rel:.1e}"


if __name__ == "__main__":
    main()
