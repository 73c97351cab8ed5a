"""The finite-N SGD trainer (docs/theory.md §2, §4): gradient, fused step, determinism, SGD vs ODE, resume."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mfae import MfaeError
from mfae.cli import main
from mfae.data import gaussian_data, train_inputs
from mfae.io import write_dataset
from mfae.meanfield import integrate_reduced_ode
from mfae.reference import TiedAutoencoder, autograd_optimizer, autograd_step
from mfae.runconfig import TrainConfig
from mfae.sgd import Stepper, sgd_direction
from mfae.spectrum import spectrum_of
from mfae.train import Interrupted, train

ACTS = ["tanh", "relu", "linear", "erf"]


data_dict = train_inputs


@pytest.mark.parametrize("activation", ACTS)
def test_hand_gradient_equals_autograd(activation):
    g = torch.Generator().manual_seed(1)
    N, d, B = 37, 11, 5
    theta = 0.7 * torch.randn(N, d, generator=g, dtype=torch.float64)
    x = torch.randn(B, d, generator=g, dtype=torch.float64) / d**0.5
    model = TiedAutoencoder(theta, activation)
    loss = 0.5 * d * N * ((x - model(x)) ** 2).sum(1).mean()
    loss.backward()
    torch.testing.assert_close(sgd_direction(activation, theta, x), -model.theta.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ACTS)
def test_fused_step_equals_autograd_sgd(activation):
    g = torch.Generator().manual_seed(2)
    N, d, B, eps, lam = 50, 9, 4, 0.01, 0.3
    theta = 0.5 * torch.randn(N, d, generator=g, dtype=torch.float64)
    model = TiedAutoencoder(theta, activation)
    opt = autograd_optimizer(model, eps, lam)
    mine = theta.clone()
    stepper = Stepper(activation, mine, B, eps, lam)
    for _ in range(5):
        x = torch.randn(B, d, generator=g, dtype=torch.float64) / d**0.5
        xe = torch.zeros(2 * B, d, dtype=torch.float64)
        xe[B:] = x
        stepper.step(xe)
        autograd_step(model, opt, x)
    torch.testing.assert_close(mine, model.theta.detach(), rtol=1e-12, atol=1e-12)


SMALL = gaussian_data([4.0, 1.0, 0.25], [1, 1, 1], 12)


def test_same_seed_same_output_and_seeds_differ():
    cfg = TrainConfig(N=64, seed=3, lr=0.2, t_max=1.0, n_times=5)
    a = train(cfg, data_dict(SMALL), torch.device("cpu"), progress=False)
    b = train(cfg, data_dict(SMALL), torch.device("cpu"), progress=False)
    c = train(TrainConfig(N=64, seed=4, lr=0.2, t_max=1.0, n_times=5), data_dict(SMALL), torch.device("cpu"),
              progress=False)
    for k in ("risk", "c", "gain", "projection"):
        np.testing.assert_array_equal(a["records"][k], b["records"][k])
    assert not np.allclose(a["records"]["c"][-1], c["records"]["c"][-1])


def test_sgd_matches_meanfield_at_large_n():
    """docs/theory.md §3 check at d=48, N=4000: gains within 0.05 and risk within 0.03 of the ODE at every time.

    The finite-N excess risk is O(d/N) ~ 0.01 here, so 0.03 leaves room for SGD noise."""
    ds = gaussian_data([4.0, 1.0, 0.25], [1, 1, 1], 48, rotate=True, seed=5)
    cfg = TrainConfig(N=4000, seed=0, activation="tanh", lam=0.1, r0=0.3, lr=0.12, batch=8, t_max=6.0, n_times=13)
    res = train(cfg, data_dict(ds), torch.device("cpu"), progress=False)
    mf = integrate_reduced_ode("tanh", spectrum_of(ds), 0.1, 0.3, res["times"])
    gain_err = np.abs(res["records"]["gain"] - mf["gain"]).max()
    risk_err = np.abs(res["records"]["risk"] - mf["risk"]).max()
    c_rel = np.abs(res["records"]["c"] / mf["c"] - 1).max()
    assert gain_err < 0.05, gain_err
    assert risk_err < 0.03, risk_err
    assert c_rel < 0.08, c_rel
    assert not res["diverged"]


def test_real_data_rows_and_test_set():
    from mfae.data import real_data

    x = np.random.default_rng(0).standard_normal((200, 6)) @ np.diag([3, 2, 1, 1, 0.5, 0.1])
    ds = real_data(x, "toy", seed=1)
    res = train(TrainConfig(N=200, lr=0.1, t_max=2.0, n_times=3, lam=0.05), data_dict(ds), torch.device("cpu"),
                progress=False)
    assert np.all(np.isfinite(res["records"]["gain"]))
    assert res["records"]["risk"][-1] < res["records"]["risk"][0]


def test_divergence_is_recorded_not_hidden():
    cfg = TrainConfig(N=64, lr=10.0, t_max=6.0, n_times=5)  # eps*d*s >> 1
    res = train(cfg, data_dict(SMALL), torch.device("cpu"), progress=False)
    assert res["diverged"] and res["diverged_step"] >= 0
    assert np.isnan(res["records"]["risk"][-1])


def test_kill_and_resume_gives_identical_result(tmp_path: Path):
    cfg = TrainConfig(N=80, seed=1, lr=0.2, t_max=2.0, n_times=5, block_steps=16)
    full = train(cfg, data_dict(SMALL), torch.device("cpu"), progress=False)
    ck = tmp_path / "run.ckpt.pt"
    with pytest.raises(Interrupted):
        train(cfg, data_dict(SMALL), torch.device("cpu"), checkpoint=ck, progress=False, stop_after_steps=37)
    assert ck.exists()
    resumed = train(cfg, data_dict(SMALL), torch.device("cpu"), checkpoint=ck, progress=False)
    for k in ("risk", "c", "gain", "projection"):
        np.testing.assert_array_equal(full["records"][k], resumed["records"][k])
    # the checkpoint now holds the finished state (the caller removes it once its output is written);
    # resuming it redoes no step and gives the same result
    assert ck.exists()
    logs = []
    again = train(cfg, data_dict(SMALL), torch.device("cpu"), checkpoint=ck, progress=False, log=logs.append)
    assert "finished" in logs[0] and again["steps_done"] == again["total_steps"]
    for k in ("risk", "c", "gain", "projection"):
        np.testing.assert_array_equal(full["records"][k], again["records"][k])
    np.testing.assert_array_equal(full["learned_eigenvalue"], again["learned_eigenvalue"])


def test_checkpoint_with_other_parameters_is_refused(tmp_path: Path):
    cfg = TrainConfig(N=80, seed=1, lr=0.2, t_max=2.0, n_times=5, block_steps=16)
    ck = tmp_path / "run.ckpt.pt"
    with pytest.raises(Interrupted):
        train(cfg, data_dict(SMALL), torch.device("cpu"), checkpoint=ck, progress=False, stop_after_steps=20)
    other = TrainConfig(N=80, seed=1, lr=0.3, t_max=2.0, n_times=5, block_steps=16)
    with pytest.raises(MfaeError, match="lr"):
        train(other, data_dict(SMALL), torch.device("cpu"), checkpoint=ck, progress=False)


class _Plant:
    """A pickled object whose unpickling would create a file: a planted 'checkpoint'."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_planted_pickle_at_the_checkpoint_path_runs_nothing(tmp_path: Path, capsys):
    """Shared scratch or a copied results folder may hold a file at a run's checkpoint path: loading it
    unpickles no object (weights_only), so its code never runs; the run refuses it in one line; a real
    checkpoint (tensors and plain containers) still resumes."""
    marker = tmp_path / "pwned"
    ck = tmp_path / "run.ckpt.pt"
    torch.save({"fingerprint": _Plant(str(marker)), "stacks": []}, ck)
    cfg = TrainConfig(N=20, seed=1, lr=0.2, t_max=1.0, n_times=3, block_steps=16)
    with pytest.raises(MfaeError) as e:
        train(cfg, data_dict(SMALL), torch.device("cpu"), checkpoint=ck, progress=False)
    assert not marker.exists()
    msg = str(e.value)
    assert msg.startswith(f"checkpoint {ck} is unreadable or not a plain-tensor checkpoint") and "\n" not in msg
    # through the CLI: one line, exit 2, no output written, the marker still absent
    data = tmp_path / "d.nc"
    write_dataset(SMALL, data)
    out = tmp_path / "o.nc"
    torch.save({"x": _Plant(str(marker))}, tmp_path / "o.nc.ckpt.pt")
    assert main(["train", "--data", str(data), "--N", "20", "--t-max", "1", "--n-times", "3", "--out", str(out),
                 "--checkpoint", str(tmp_path / "o.nc.ckpt.pt"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mfae: error: checkpoint ") and err.count("\n") == 1, err
    assert not marker.exists() and not out.exists()


def _edited(data: dict, key: str, index: tuple) -> dict:
    """A copy of train inputs with one entry of one array nudged (the rest untouched)."""
    out = {k: np.array(v, copy=True) for k, v in data.items()}
    out[key][index] += 1e-3
    return out


@pytest.mark.parametrize("kind, key, index", [
    ("gaussian", "eigenvector", (5, 9)),   # one entry of a late eigenvector column (not the first)
    ("gaussian", "eigenvalue", (7,)),      # one eigenvalue of a small group
    ("real", "x_train", (17, 3)),          # one training row
    ("real", "x_test", (2, 1)),            # one test sample
])
def test_checkpoint_of_other_data_is_refused(tmp_path: Path, kind, key, index):
    """A checkpoint is resumed only on the data it was made with: the same parameters on data that differ
    in a single entry of any array the run reads must not silently continue the old run."""
    if kind == "gaussian":
        data = data_dict(gaussian_data([4.0, 1.0, 0.25], [1, 1, 1], 12, rotate=True, seed=1))
    else:
        from mfae.data import real_data

        x = np.random.default_rng(0).standard_normal((120, 12)) @ np.diag(np.linspace(3, 0.2, 12))
        data = data_dict(real_data(x, "toy", seed=1))
    cfg = TrainConfig(N=40, seed=1, lr=0.2, t_max=2.0, n_times=5, block_steps=16)
    ck = tmp_path / "run.ckpt.pt"
    with pytest.raises(Interrupted):
        train(cfg, data, torch.device("cpu"), checkpoint=ck, progress=False, stop_after_steps=20)
    with pytest.raises(MfaeError, match="checkpoint"):
        train(cfg, _edited(data, key, index), torch.device("cpu"), checkpoint=ck, progress=False)
    # the original data still resume it
    res = train(cfg, data, torch.device("cpu"), checkpoint=ck, progress=False)
    assert res["steps_done"] == res["total_steps"]


@pytest.mark.parametrize("t_max, d, lr, steps", [(1.0, 12, 0.2, 60), (0.1, 8, 0.2, 4), (0.11, 8, 0.2, 5),
                                                 (2.0, 6, 0.05, 240), (0.3, 12, 0.07, 52)])
def test_step_count_and_grid_limit(t_max, d, lr, steps):
    """steps = ceil(t_max d / lr), hand-computed (60 exactly at t_max d / lr = 60 despite float rounding);
    a grid of more times than steps + 1 is refused, one of exactly steps + 1 accepted."""
    from mfae.runconfig import check_grid, n_steps

    assert n_steps(t_max, d, lr) == steps
    check_grid(TrainConfig(N=4, t_max=t_max, lr=lr, n_times=steps + 1), d)
    with pytest.raises(MfaeError, match=f"<= {steps + 1}"):
        check_grid(TrainConfig(N=4, t_max=t_max, lr=lr, n_times=steps + 2), d)


def test_train_refuses_more_times_than_steps():
    """d = 12, lr = 0.2, t_max = 0.1: ceil(0.1 * 12 / 0.2) = 6 steps, so at most 7 distinct measurement times;
    train() itself refuses 8 (it would measure one step twice) before running anything."""
    with pytest.raises(MfaeError, match="<= 7"):
        train(TrainConfig(N=8, lr=0.2, t_max=0.1, n_times=8), data_dict(SMALL), torch.device("cpu"), progress=False)
    res = train(TrainConfig(N=8, lr=0.2, t_max=0.1, n_times=7), data_dict(SMALL), torch.device("cpu"), progress=False)
    assert res["total_steps"] == 6


@pytest.mark.parametrize("bad, match", [(dict(N=0), "N"), (dict(lam=-1.0), "lam"), (dict(activation="gelu"), "activation"),
                                        (dict(lr=float("nan")), "lr"), (dict(n_times=1), "n-times")])
def test_bad_config(bad, match):
    with pytest.raises(MfaeError, match=match):
        TrainConfig(**{"N": 10, **bad}).validate()
