"""`mfae gpu-check` / `make gpu-check`: without a GPU it says so in one line and exits non-zero; the
comparison it makes between devices is exercised here on the CPU (two CPU variants must agree exactly,
and a curve changed by more than the tolerance is caught)."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from mfae import gpucheck
from mfae.cli import main

ROOT = Path(__file__).resolve().parents[1]
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible here")


@no_cuda
def test_without_a_gpu_one_line_and_a_nonzero_exit(capsys):
    assert main(["gpu-check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mfae: error: no CUDA device visible (torch ") and err.count("\n") == 1, err
    assert "srun --gpus 1 make gpu-check" in err


@no_cuda
def test_make_gpu_check_stops_at_the_first_step():
    p = subprocess.run(["make", "-s", "gpu-check"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode != 0
    assert "no CUDA device visible" in p.stderr and "calibrat" not in p.stdout, p.stdout + p.stderr


def test_the_comparison_on_two_cpu_variants():
    lines = []
    cpu = gpucheck.Variant("cpu", "cpu", False)
    ok = gpucheck.check((cpu, gpucheck.Variant("cpu again", "cpu", False)), d=12, N=64, seeds=2, t_max=0.5,
                        say=lines.append)
    assert ok and "risk 0.0e+00" in lines[2] and "gain 0.0e+00" in lines[2], lines
    curves, rate = gpucheck.train_variant(cpu, 12, 64, 2, 0.5)
    assert curves["risk"].shape == (2, 11) and curves["gain"].shape == (2, 11, 3) and rate > 0
    off = {"risk": curves["risk"] * (1 + 2 * gpucheck.RISK_RTOL), "gain": curves["gain"].copy()}
    assert gpucheck.disagreement(off, curves)[0] == pytest.approx(2 * gpucheck.RISK_RTOL)
    off["gain"][1, 5, 0] += 2 * gpucheck.GAIN_ATOL
    assert gpucheck.disagreement(off, curves)[1] == pytest.approx(2 * gpucheck.GAIN_ATOL)
    assert np.isfinite(curves["risk"]).all()
