"""TRAK scores for a PyTorch model, refereed by attrib.lds against retrainings done in PyTorch.

    python python/examples/torch_trak.py          (needs torch; exits with a message without it)

1. Trains a small MLP in PyTorch (SGD with momentum, a fixed batch order: the single-model
   protocol of MATH.md E1), with per-example data weights in the loss so that dropping examples
   is a weight of 0.
2. Computes per-example gradients of the margin with torch.func (vmap of grad), projects them
   with attrib.project and scores with attrib.trak_scores (MATH.md E4). attrib's sign: dropping
   a set D predicts f(S \\ D) ~ f(S) - sum_{i in D} tau_i.
3. Retrains on 40 random subsets that drop 10% of the training set and prints attrib.lds of the
   TRAK scores next to that of random scores.
"""

import sys

import numpy as np

import attrib

try:
    import torch
    from torch.func import functional_call, grad, vmap
except ImportError:
    print("torch is not installed: pip install torch, then run this example again")
    sys.exit(0)

N_TRAIN, N_TEST, D, TARGETS, SUBSETS, DROP, K = 400, 100, 20, 20, 40, 0.1, 128


def data():
    r = np.random.default_rng(0)
    y = r.integers(0, 2, N_TRAIN + N_TEST)
    X = r.normal(size=(N_TRAIN + N_TEST, D)) + 0.8 * (2 * y[:, None] - 1) * (np.arange(D) < 4)
    flip = r.random(N_TRAIN + N_TEST) < 0.1  # some label noise, so that examples matter
    y = np.where(flip, 1 - y, y)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    return X[:N_TRAIN], y[:N_TRAIN], X[N_TRAIN:], y[N_TRAIN:]


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(D, 32), torch.nn.GELU(), torch.nn.Linear(32, 2))


def margin(logits, y):
    """z_y - logsumexp_{c != y} z_c: attrib's `margin` output (log(p / (1 - p)) for 2 classes)."""
    true = logits.gather(-1, y[..., None])[..., 0]
    others = logits.scatter(-1, y[..., None], float("-inf"))
    return true - torch.logsumexp(others, -1)


def train(X, y, w):
    """SGD with momentum, batches in one fixed order for every retraining; loss mean(w_i l_i)."""
    net = model()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    order = torch.Generator().manual_seed(1)
    for _ in range(20):
        for idx in torch.randperm(N_TRAIN, generator=order).split(50):
            loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx], reduction="none")
            opt.zero_grad()
            (w[idx] * loss).mean().backward()
            opt.step()
    return net


def per_example_margin_grads(net, X, y):
    params = {k: v.detach() for k, v in net.named_parameters()}

    def f(p, x, t):
        return margin(functional_call(net, p, (x[None],))[0], t)

    g = vmap(grad(f), in_dims=(None, 0, 0))(params, X, y)
    return torch.cat([v.reshape(len(X), -1) for v in g.values()], 1).double().numpy()


def main():
    X, y, Xt, yt = data()
    net = train(X, y, torch.ones(N_TRAIN))
    with torch.no_grad():
        train_margins = margin(net(X), y).double().numpy()
        base = margin(net(Xt[:TARGETS]), yt[:TARGETS]).double().numpy()
    phi = attrib.project(per_example_margin_grads(net, X, y), K, seed=0)
    phi_t = attrib.project(per_example_margin_grads(net, Xt[:TARGETS], yt[:TARGETS]), K, seed=0)
    scores = attrib.trak_scores(phi, phi_t, margins=train_margins)  # [targets, train]

    r = np.random.default_rng(2)
    masks = np.ones((SUBSETS, N_TRAIN), dtype=bool)
    outputs = np.zeros((SUBSETS, TARGETS))
    for j in range(SUBSETS):
        masks[j, r.choice(N_TRAIN, int(DROP * N_TRAIN), replace=False)] = False
        retrained = train(X, y, torch.tensor(masks[j], dtype=torch.float32))
        with torch.no_grad():
            outputs[j] = margin(retrained(Xt[:TARGETS]), yt[:TARGETS]).double().numpy()
    trak = attrib.lds(scores, masks, outputs, base=base)
    rand = attrib.lds(r.normal(size=scores.shape), masks, outputs, base=base)
    print(f"TRAK (k = {K}) LDS {trak['lds']:.3f} [{trak['ci'][0]:.3f}, {trak['ci'][1]:.3f}], "
          f"random scores {rand['lds']:.3f}  ({SUBSETS} PyTorch retrainings dropping {DROP:.0%})")


if __name__ == "__main__":
    main()
