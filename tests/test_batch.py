"""Several SGD runs in one process (mfae.train.train_batch, `mfae train --N a,b --seed s,t`): each run of a
batch is the run it is alone (its own random streams), the stacked step equals R separate autograd SGD
runs, a diverging run costs the others nothing, and a killed batch resumes bit-identically."""

import re
import subprocess

import numpy as np
import pytest
import torch
import xarray as xr

from mfae import MfaeError
from mfae.data import gaussian_data, train_inputs
from mfae.reference import TiedAutoencoder, autograd_optimizer, autograd_step
from mfae.runconfig import TrainConfig, derived_seed
from mfae.runsetup import GaussianSampler
from mfae.sgd import Stepper
from mfae.train import Interrupted, train, train_batch

ACTS = ["tanh", "relu", "linear", "erf"]
CPU = torch.device("cpu")
DATA = train_inputs(gaussian_data([4.0, 1.0, 0.25], [1, 1, 1], 12))
CURVES = ("risk", "q", "p", "c", "gain", "projection")


def cfg(**kw) -> TrainConfig:
    base = dict(N=24, lr=0.2, t_max=1.0, n_times=5, dtype="float64", block_steps=16)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize("activation", ACTS)
def test_stacked_step_equals_separate_autograd_runs(activation):
    """One Stepper over (R, N, d) == R independent nn.Module + autograd + torch.optim.SGD runs."""
    g = torch.Generator().manual_seed(5)
    R, N, d, B, eps, lam = 3, 20, 7, 4, 0.02, 0.3
    theta = 0.6 * torch.randn(R, N, d, generator=g, dtype=torch.float64)
    models = [TiedAutoencoder(theta[r].clone(), activation) for r in range(R)]
    opts = [autograd_optimizer(m, eps, lam) for m in models]
    mine = theta.clone()
    xs = torch.randn(6, R, B, d, generator=g, dtype=torch.float64) / d**0.5
    xe = torch.zeros(6, R, 2 * B, d, dtype=torch.float64)
    xe[:, :, B:] = xs
    Stepper(activation, mine, B, eps, lam).run(xe)
    for k in range(6):
        for r in range(R):
            autograd_step(models[r], opts[r], xs[k, r])
    for r in range(R):
        torch.testing.assert_close(mine[r], models[r].theta.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("activation", ACTS)
def test_each_run_of_a_batch_is_the_run_alone_float64(activation):
    """Two N and three seeds in one batch; every run equals `train` of it alone to 1e-10 (float64)."""
    cfgs = [cfg(activation=activation, N=N, seed=s) for N, s in [(24, 0), (24, 1), (40, 0), (24, 2)]]
    batch = train_batch(cfgs, DATA, CPU, progress=False)
    for c, got in zip(cfgs, batch):
        alone = train(c, DATA, CPU, progress=False)
        for k in CURVES:
            np.testing.assert_allclose(got["records"][k], alone["records"][k], rtol=1e-10, atol=1e-12, err_msg=k)
        np.testing.assert_allclose(got["learned_eigenvalue"], alone["learned_eigenvalue"], rtol=1e-10)
        assert got["steps_done"] == alone["steps_done"] == alone["total_steps"]
    # and the runs really differ (each its own streams): seed 0 and 1 at N = 24 are not the same run
    assert not np.allclose(batch[0]["records"]["risk"][1:], batch[1]["records"]["risk"][1:])


def test_float32_batch_within_rounding_of_run_alone():
    cfgs = [cfg(dtype="float32", N=32, seed=s, t_max=2.0) for s in range(3)]
    for c, got in zip(cfgs, train_batch(cfgs, DATA, CPU, progress=False)):
        alone = train(c, DATA, CPU, progress=False)
        np.testing.assert_allclose(got["records"]["risk"], alone["records"]["risk"], rtol=1e-5)
        np.testing.assert_allclose(got["records"]["gain"], alone["records"]["gain"], rtol=1e-4, atol=1e-6)


def test_a_diverging_run_does_not_touch_the_others(monkeypatch):
    """Run 1's samples turn infinite from its third draw on: it is flagged diverged and frozen;
    runs 0 and 2 of the same stack are exactly the runs they are alone."""
    cfgs = [cfg(N=24, seed=s, n_times=9) for s in range(3)]
    draw = GaussianSampler.draw
    bad_seed = derived_seed(1, 1)  # run 1's sample stream (seed 1, stream 1)
    counts = {"n": 0}

    def poisoned(self, n):
        x = draw(self, n)
        if self.gen.initial_seed() == bad_seed:
            counts["n"] += 1
            if counts["n"] > 2:
                x = x * float("inf")
        return x

    monkeypatch.setattr(GaussianSampler, "draw", poisoned)
    got = train_batch(cfgs, DATA, CPU, progress=False)
    monkeypatch.setattr(GaussianSampler, "draw", draw)
    assert got[1]["diverged"] and 0 < got[1]["diverged_step"] < got[1]["total_steps"]
    assert np.isnan(got[1]["learned_eigenvalue"]).all()
    assert np.isnan(got[1]["records"]["risk"][-1])  # never measured after it diverged
    for r in (0, 2):
        alone = train(cfgs[r], DATA, CPU, progress=False)
        assert not got[r]["diverged"]
        np.testing.assert_allclose(got[r]["records"]["risk"], alone["records"]["risk"], rtol=1e-12)


def test_killed_batch_resumes_bit_identically(tmp_path):
    """Killed in its second stack (N = 40), resumed from the checkpoint: the same bits as uninterrupted."""
    cfgs = [cfg(N=N, seed=s, dtype="float32") for N, s in [(24, 0), (24, 1), (40, 3)]]
    whole = train_batch(cfgs, DATA, CPU, progress=False)
    ck = tmp_path / "b.ckpt.pt"
    total = whole[0]["total_steps"]
    with pytest.raises(Interrupted, match="checkpoint saved"):
        train_batch(cfgs, DATA, CPU, progress=False, checkpoint=ck, checkpoint_seconds=1e9,
                    stop_after_steps=2 * total + 20)
    logs = []
    again = train_batch(cfgs, DATA, CPU, progress=False, checkpoint=ck, log=logs.append)
    step = int(re.search(r"resuming from checkpoint .* at batch step (\d+)", logs[0]).group(1))
    assert 2 * total + 20 <= step < 3 * total  # stopped at the end of a chunk inside the second stack
    for a, b in zip(whole, again):
        for k in CURVES:
            np.testing.assert_array_equal(a["records"][k], b["records"][k])


def test_checkpoint_of_other_runs_or_other_data_is_refused(tmp_path):
    cfgs = [cfg(N=24, seed=s) for s in range(2)]
    ck = tmp_path / "b.ckpt.pt"
    with pytest.raises(Interrupted):
        train_batch(cfgs, DATA, CPU, progress=False, checkpoint=ck, stop_after_steps=1)
    with pytest.raises(MfaeError, match="2 runs instead of 3"):
        train_batch(cfgs + [cfg(N=24, seed=5)], DATA, CPU, progress=False, checkpoint=ck)
    with pytest.raises(MfaeError, match=r"different parameters \(seed\)"):
        train_batch([cfg(N=24, seed=0), cfg(N=24, seed=7)], DATA, CPU, progress=False, checkpoint=ck)
    edited = {k: v.copy() for k, v in DATA.items()}
    edited["eigenvector"][5, -1] += 1e-9  # one entry of the last eigenvector
    with pytest.raises(MfaeError, match="different data"):
        train_batch(cfgs, edited, CPU, progress=False, checkpoint=ck)


def test_runs_of_a_batch_must_share_everything_but_n_and_seed():
    with pytest.raises(MfaeError, match="differ only in N and seed, not in lam"):
        train_batch([cfg(lam=0.1), cfg(lam=0.2, seed=1)], DATA, CPU, progress=False)
    with pytest.raises(MfaeError, match="given twice"):
        train_batch([cfg(), cfg()], DATA, CPU, progress=False)


def test_cli_batch_writes_the_files_of_separate_runs(tmp_path, mfae_bin):
    """`mfae train --N 16,24 --seed 0,1 --out a b` writes the same curves as two one-run commands."""
    data = tmp_path / "d.nc"
    subprocess.run([mfae_bin, "data", "gaussian", "--eigenvalues", "4,1", "--fractions", "1,1", "--d", "8",
                    "--out", str(data)], check=True, capture_output=True)
    common = ["--data", str(data), "--t-max", "0.5", "--n-times", "3", "--dtype", "float64", "--no-progress"]
    outs = [tmp_path / "a.nc", tmp_path / "b.nc"]
    p = subprocess.run([mfae_bin, "train", *common, "--N", "16,24", "--seed", "0,1", "--out", *map(str, outs)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for (N, s), o in zip([(16, 0), (24, 1)], outs):
        one = tmp_path / f"one_{N}.nc"
        subprocess.run([mfae_bin, "train", *common, "--N", str(N), "--seed", str(s), "--out", str(one)],
                       check=True, capture_output=True)
        with xr.open_dataset(o) as a, xr.open_dataset(one) as b:
            assert a.attrs["param_N"] == N and a.attrs["param_seed"] == s
            np.testing.assert_allclose(a.risk.values, b.risk.values, rtol=1e-10)
            np.testing.assert_allclose(a.gain.values, b.gain.values, rtol=1e-10, atol=1e-14)
    assert not (tmp_path / "a.nc.ckpt.pt").exists()  # removed once every output is in place
    bad = subprocess.run([mfae_bin, "train", *common, "--N", "16,24", "--seed", "0,1,2", "--out", "x.nc"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--N has 2 values and --seed 3" in bad.stderr


def test_cli_meanfield_models_in_one_process_equal_separate_commands(tmp_path, mfae_bin):
    """`mfae meanfield --activation tanh,relu --lam 0.1,0.3` writes four files, activation-major, each
    equal to its one-model command."""
    data = tmp_path / "d.nc"
    subprocess.run([mfae_bin, "data", "gaussian", "--eigenvalues", "4,1", "--fractions", "1,1", "--d", "8",
                    "--out", str(data)], check=True, capture_output=True)
    common = ["meanfield", "--data", str(data), "--t-max", "2", "--n-times", "11"]
    outs = [tmp_path / f"{a}_{lam}.nc" for a in ("tanh", "relu") for lam in ("0.1", "0.3")]
    p = subprocess.run([mfae_bin, *common, "--activation", "tanh,relu", "--lam", "0.1,0.3",
                        "--out", *map(str, outs)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for o in outs:
        act, lam = o.stem.split("_")
        one = tmp_path / f"one_{o.name}"
        subprocess.run([mfae_bin, *common, "--activation", act, "--lam", lam, "--out", str(one)], check=True,
                       capture_output=True)
        with xr.open_dataset(o) as a, xr.open_dataset(one) as b:
            assert a.attrs["param_activation"] == act and float(a.attrs["param_lam"]) == float(lam)
            np.testing.assert_array_equal(a.c.values, b.c.values)
    bad = subprocess.run([mfae_bin, *common, "--activation", "tanh,relu", "--out", "x.nc"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "2 model(s)" in bad.stderr and "1 --out" in bad.stderr
    bad = subprocess.run([mfae_bin, *common, "--activation", "tanh,sigmoid", "--out", "x.nc", "y.nc"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown activation 'sigmoid'" in bad.stderr
