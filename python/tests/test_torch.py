"""PyTorch state_dicts in and out of attrib (issue 18, item 5). Needs torch and safetensors;
skipped, with the reason in pytest's summary, where they are not installed."""

import numpy as np
import pytest

import attrib

torch = pytest.importorskip("torch", reason="torch is not installed: the state_dict bridge is untested here")
st = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")


class Mlp(torch.nn.Module):
    """attrib's `mlp` (GELU, the default activation): parameters `layers.{i}.weight` `[out, in]`
    and `layers.{i}.bias`, exactly the names and shapes of attrib's params.safetensors."""

    def __init__(self, sizes):
        super().__init__()
        self.layers = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = torch.nn.functional.gelu(x)
        return x


CFG = {
    "data": {"source": "digits"},
    "model": {"kind": "mlp", "hidden": [32]},
    "optim": {"kind": "sgd", "lr": 0.1},
    "train": {"epochs": 2, "batch_size": 64, "checkpoint_every": 1000},
}


def margins(logits, y):
    z = logits.double()
    true = z.gather(1, y[:, None])[:, 0]
    others = z.scatter(1, y[:, None], float("-inf"))
    return true - torch.logsumexp(others, 1)


def test_attribs_params_load_into_the_equal_pytorch_module(tmp_path):
    run = attrib.train(CFG, tmp_path / "r")
    model = Mlp([64, 32, 10])
    model.load_state_dict(st.load_file(str(tmp_path / "r" / "params.safetensors")))
    X, y = run.dataset("test")
    with torch.no_grad():
        got = margins(model(torch.from_numpy(X)), torch.from_numpy(y)).numpy()
    assert np.max(np.abs(got - run.outputs("margin", "test"))) < 1e-5


def test_a_pytorch_init_is_attribs_train_init_from(tmp_path):
    torch.manual_seed(0)
    model = Mlp([64, 32, 10])
    path = tmp_path / "init.safetensors"
    st.save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    cfg = {**CFG, "train": {**CFG["train"], "init_from": str(path)}}
    attrib.train(cfg, tmp_path / "r")
    start = st.load_file(str(tmp_path / "r" / "trajectory" / "step_00000000.safetensors"))
    for name, value in model.state_dict().items():
        assert torch.equal(start[name], value), name


def test_the_torch_func_example_scores_better_than_random():
    import pathlib
    import re
    import subprocess
    import sys

    example = pathlib.Path(__file__).resolve().parents[1] / "examples" / "torch_trak.py"
    out = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, check=True)
    trak, rand = map(float, re.search(r"LDS (-?[\d.]+) .*random scores (-?[\d.]+)", out.stdout).groups())
    assert trak > rand + 0.15, out.stdout


def test_magic_equals_an_unrolled_pytorch_metagradient():
    """scripts/magic_vs_torch.py on a 2-epoch digits MLP: PyTorch replays attrib's run from the
    same init, batch plan and learning rates and differentiates it end to end; the scores agree to
    a relative 1e-5 in float64 (the script asserts it) and the replay reaches attrib's outputs."""
    import pathlib
    import re
    import subprocess
    import sys

    script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "magic_vs_torch.py"
    out = subprocess.run(
        [sys.executable, str(script), "--hidden", "16", "--epochs", "2", "--targets", "1", "3"],
        capture_output=True, text=True, check=True,
    ).stdout
    replay = float(re.search(r"replayed test margins within (\S+) of", out).group(1))
    assert replay < 1e-10, out
    diffs = [float(x) for x in re.findall(r"\| ([0-9.e+-]+) \|\n", out)]
    assert len(diffs) == 2 and max(diffs) < 1e-5, out
