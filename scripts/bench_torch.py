#!/usr/bin/env python3
"""PyTorch side of scripts/bench_vs_torch.sh: the workloads of `attrib bench train`, in PyTorch.

Same shapes, optimizer, hyper-parameters, batch size and float32 as attrib's workloads; the data is
random (its values do not change the arithmetic) and the init is PyTorch's default. Only the
training loop is timed: batch gather, forward, backward, optimizer step. Prints one JSON object per
line, with the fields the shell script reads:

  {"kind": "gemm", "m":..., "k":..., "n":..., "threads":..., "gflops":...}
  {"kind": "step", "workload": NAME, "threads":..., "batch":..., "ms_per_step":...}

NAME matches the `workload` field of attrib's `bench_train` events.
"""
import argparse
import json
import time

import torch


def timed(fn, warmup, budget):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - t0 < budget:
        fn()
        calls += 1
    return calls, time.perf_counter() - t0


def mlp(d_in, hidden, k):
    layers, d = [], d_in
    for h in hidden:
        layers += [torch.nn.Linear(d, h), torch.nn.GELU()]
        d = h
    layers.append(torch.nn.Linear(d, k))
    return torch.nn.Sequential(*layers)


class ConvNorm(torch.nn.Module):
    """attrib's conv_norm: 3x3 "same" convolution with bias, then group norm (eps 1e-5)."""

    def __init__(self, cin, cout, groups):
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = torch.nn.GroupNorm(groups, cout, eps=1e-5)

    def forward(self, x):
        return self.norm(self.conv(x))


class Cnn(torch.nn.Module):
    """crates/nn/src/model/cnn.rs: per stage h = gelu(conv_norm(h)); with residual blocks
    h = gelu(h + conv_norm(gelu(conv_norm(h)))); 2x2 average pooling after every stage but the last
    while the side is even; global average pooling; linear head."""

    def __init__(self, cin, side, channels, groups, residual, k):
        super().__init__()
        self.stages = torch.nn.ModuleList()
        self.pool = []
        for i, c in enumerate(channels):
            m = torch.nn.Module()
            m.conv = ConvNorm(cin, c, groups)
            if residual:
                m.res1 = ConvNorm(c, c, groups)
                m.res2 = ConvNorm(c, c, groups)
            self.stages.append(m)
            pool = i + 1 < len(channels) and side >= 2 and side % 2 == 0
            self.pool.append(pool)
            side = side // 2 if pool else side
            cin = c
        self.residual = residual
        self.head = torch.nn.Linear(cin, k)

    def forward(self, x):
        gelu = torch.nn.functional.gelu
        h = x
        for m, pool in zip(self.stages, self.pool):
            h = gelu(m.conv(h))
            if self.residual:
                h = gelu(h + m.res2(gelu(m.res1(h))))
            if pool:
                h = torch.nn.functional.avg_pool2d(h, 2)
        return self.head(h.mean(dim=(2, 3)))


class Block(torch.nn.Module):
    """One pre-norm transformer block of crates/nn/src/model/gpt.rs: h + attn(ln1(h)), then
    h + proj(gelu(fc(ln2(h)))); causal self-attention with a fused qkv projection (bias) and an
    output projection (bias), layer norms with eps 1e-5."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = torch.nn.LayerNorm(d, eps=1e-5)
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.out = torch.nn.Linear(d, d)
        self.ln2 = torch.nn.LayerNorm(d, eps=1e-5)
        self.fc = torch.nn.Linear(d, 4 * d)
        self.proj = torch.nn.Linear(4 * d, d)

    def forward(self, h):
        b, t, d = h.shape
        q, k, v = self.qkv(self.ln1(h)).split(d, dim=2)
        heads = lambda x: x.view(b, t, self.heads, d // self.heads).transpose(1, 2)
        a = torch.nn.functional.scaled_dot_product_attention(
            heads(q), heads(k), heads(v), is_causal=True)
        h = h + self.out(a.transpose(1, 2).reshape(b, t, d))
        return h + self.proj(torch.nn.functional.gelu(self.fc(self.ln2(h))))


class Gpt(torch.nn.Module):
    """crates/nn/src/model/gpt.rs: token and position embeddings, blocks, final layer norm, untied
    head without bias; the loss is the mean next-token cross-entropy of each window."""

    def __init__(self, vocab, context, d, layers, heads):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, d)
        self.pos = torch.nn.Parameter(torch.zeros(context, d))
        self.blocks = torch.nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = torch.nn.LayerNorm(d, eps=1e-5)
        self.head = torch.nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = ids[:, :-1]
        h = self.tok(x) + self.pos[: x.shape[1]]
        for blk in self.blocks:
            h = blk(h)
        logits = self.head(self.ln_f(h))
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))


def workloads():
    # (a) examples/digits_mlp.toml: 1,437 training examples of 64 pixels (digits, test 0.2),
    # 64-128-128-10 GELU, SGD lr 0.03 momentum 0.9 weight decay 5e-4, batch 64, drop_last.
    # attrib's cosine schedule only rescales lr per step; it is left out here.
    yield ("digits MLP 64-128-128-10", 1437, 64, [128, 128], 64,
           dict(lr=0.03, momentum=0.9, weight_decay=5e-4))
    # (b) bench.rs wide_mlp: 4,096 examples of 512, hidden 512x4 GELU, SGD lr 0.01 momentum 0.9.
    yield ("MLP 512-512-512-512 synthetic", 4096, 512, [512] * 4, 256,
           dict(lr=0.01, momentum=0.9, weight_decay=0.0))
    # (c) bench.rs mlp_64_512: the same recipe, 4,096 examples of 64, hidden 512x2.
    yield ("MLP 64-512-512-10 synthetic", 4096, 64, [512] * 2, 256,
           dict(lr=0.01, momentum=0.9, weight_decay=0.0))
    # (d) examples/digits_cnn.toml: 1,437 digits as 1x8x8 images, channels [16, 32], group norm of
    # 4 groups, GELU, avg pool, residual; AdamW lr 0.003 weight decay 0.01, batch 64, drop_last.
    # attrib's one-cycle schedule only rescales lr per step; it is left out here.
    yield ("digits CNN 16-32 residual", 1437, (1, 8, 8), ("cnn", [16, 32], True), 64,
           dict(lr=0.003, weight_decay=0.01))
    # (e) bench.rs cnn_28: the same recipe without residual blocks on 2,048 synthetic 1x28x28.
    yield ("CNN 28x28 16-32 synthetic", 2048, (1, 28, 28), ("cnn", [16, 32], False), 64,
           dict(lr=0.003, weight_decay=0.01))
    # (f) examples/moby_gpt.toml: 2,048 windows of 64 tokens over 81 characters, 2 layers of width
    # 64 with 4 heads, AdamW betas (0.95, 0.975), eps 1e-8, weight decay 0.01, batch 32 (attrib's
    # eps_root = 1e-8 and its schedule change no cost; they are left out here).
    yield ("Moby-Dick GPT 2x64 synthetic", 2048, 64, ("gpt", 81, 64, 2, 4), 32,
           dict(lr=0.003, betas=(0.95, 0.975), eps=1e-8, weight_decay=0.01))


def step_bench(name, n, d, hidden, batch, opt_kw, warmup, budget, threads):
    g = torch.Generator().manual_seed(0)
    shape = d if isinstance(d, tuple) else (d,)
    x = torch.randn(n, *shape, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    if isinstance(hidden, tuple) and hidden[0] == "gpt":
        _, vocab, width, layers, heads = hidden
        x = torch.randint(0, vocab, (n, d), generator=g)
        model = Gpt(vocab, d - 1, width, layers, heads)
        opt = torch.optim.AdamW(model.parameters(), **opt_kw)
        loss_fn = lambda loss, _: loss
        return loop(name, model, opt, loss_fn, x, y, n, batch, g, warmup, budget, threads)
    if isinstance(hidden, tuple):
        _, channels, residual = hidden
        model = Cnn(shape[0], shape[1], channels, 4, residual, 10)
        opt = torch.optim.AdamW(model.parameters(), **opt_kw)
    else:
        model = mlp(d, hidden, 10)
        opt = torch.optim.SGD(model.parameters(), **opt_kw)
    ce = torch.nn.CrossEntropyLoss()
    loss_fn = lambda out, yb: ce(out, yb)
    return loop(name, model, opt, loss_fn, x, y, n, batch, g, warmup, budget, threads)


def loop(name, model, opt, loss_fn, x, y, n, batch, g, warmup, budget, threads):
    """Times the training loop: batch gather, forward, loss, backward, optimizer step."""
    per_epoch = n // batch
    perm = torch.randperm(n, generator=g)
    state = {"t": 0}

    def step():
        i = state["t"] % per_epoch
        idx = perm[i * batch:(i + 1) * batch]
        xb, yb = x[idx], y[idx]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        state["t"] += 1

    calls, seconds = timed(step, warmup, budget)
    return {"kind": "step", "workload": name, "threads": threads, "batch": batch,
            "ms_per_step": 1e3 * seconds / calls}


def gemm_bench(m, k, n, warmup, budget, threads):
    a = torch.rand(m, k) * 2 - 1
    b = torch.rand(k, n) * 2 - 1
    calls, seconds = timed(lambda: torch.matmul(a, b), min(warmup, 3), budget)
    return {"kind": "gemm", "m": m, "k": k, "n": n, "threads": threads,
            "gflops": 2.0 * m * k * n * calls / seconds / 1e9}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--quick", action="store_true", help="0.25 s per measurement instead of 2 s")
    a = p.parse_args()
    budget, warmup = (0.25, 2) if a.quick else (2.0, 10)
    torch.set_grad_enabled(True)
    for threads in a.threads:
        torch.set_num_threads(threads)
        for (m, k, n) in [(256, 256, 256), (256, 512, 512), (1024, 1024, 1024)]:
            print(json.dumps(gemm_bench(m, k, n, warmup, budget, threads)), flush=True)
        for w in workloads():
            print(json.dumps(step_bench(*w, warmup, budget, threads)), flush=True)


if __name__ == "__main__":
    main()
