"""One SGD run's set-up (docs/theory.md §2, §4), before its first step: the step size, step count and
measurement steps (from mfae.runconfig), the sampler of training samples, the test set and the initial
weights, each from its own seeded random stream. `mfae.train` trains runs set up here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch

from .runconfig import TrainConfig, check_grid, derived_seed, measure_steps, n_steps, time_grid

# --- sampling ---------------------------------------------------------------------------------------

class GaussianSampler:
    """Fresh Gaussian samples x = V (sqrt(s/d) * z): Cov(x) = V diag(s) V^T / d (docs/theory.md §2)."""

    def __init__(self, V: torch.Tensor, s: torch.Tensor, d: int, gen: torch.Generator):
        self.Vt = V.T.contiguous()
        self.scale = torch.sqrt(s / d)
        self.gen, self.m = gen, V.shape[1]

    @classmethod
    def like(cls, other: "GaussianSampler", gen: torch.Generator) -> "GaussianSampler":
        """The same distribution (shared arrays) with another generator: another run of a batch."""
        new = cls.__new__(cls)
        new.Vt, new.scale, new.m, new.gen = other.Vt, other.scale, other.m, gen
        return new

    def draw(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.m, generator=self.gen, device=self.Vt.device, dtype=self.Vt.dtype)
        return (z * self.scale) @ self.Vt


class RowSampler:
    """Rows of a finite training set drawn with replacement (docs/theory.md §2)."""

    def __init__(self, x: torch.Tensor, gen: torch.Generator):
        self.x, self.gen = x, gen

    def draw(self, n: int) -> torch.Tensor:
        idx = torch.randint(self.x.shape[0], (n,), generator=self.gen, device=self.x.device)
        return self.x.index_select(0, idx)


# --- the run's set-up ---------------------------------------------------------------------------------

@dataclass
class RunSetup:
    """Everything a run needs before its first step, derived from (cfg, data, device) alone.

    eps = lr/d, total = ceil(t_max/eps) steps, `ksteps[i]` the step at which grid time `times[i]` is
    measured; the sampler draws training samples (seeded stream 1), `x_test` is the float64 test set
    (Gaussian data: seeded stream 2 of cfg.test_seed; real data: the test split) and `theta0` the
    initial weights (stream 0).
    """

    dtype: torch.dtype
    d: int
    eps: float
    total: int
    times: np.ndarray
    ksteps: np.ndarray
    V: torch.Tensor
    sampler: "GaussianSampler | RowSampler"
    sample_gen: torch.Generator
    x_test: torch.Tensor
    theta0: torch.Tensor


def prepare_run(cfg: TrainConfig, data: Mapping[str, np.ndarray], device: torch.device,
                shared: RunSetup | None = None) -> RunSetup:
    """Set up one run (see `RunSetup`); `data` comes from `mfae.data.train_inputs`. With `shared`, the
    setup of another run of the same batch (same data, schedule and test seed), its eigenbasis and test
    set are reused instead of being made again (they are the same arrays)."""
    dtype = getattr(torch, cfg.dtype)
    V_np = data["eigenvector"]
    d = V_np.shape[0]
    eps = cfg.lr / d
    total = n_steps(cfg.t_max, d, cfg.lr)
    check_grid(cfg, d)
    times = time_grid(cfg.t_max, cfg.n_times)
    sample_gen = torch.Generator(device=device).manual_seed(derived_seed(cfg.seed, 1))
    if shared is not None:
        V, x_test = shared.V, shared.x_test
        sampler = (RowSampler(shared.sampler.x, sample_gen) if isinstance(shared.sampler, RowSampler)
                   else GaussianSampler.like(shared.sampler, sample_gen))
    elif "x_train" in data:
        V = torch.as_tensor(V_np, dtype=dtype, device=device)
        sampler = RowSampler(torch.as_tensor(data["x_train"], dtype=dtype, device=device), sample_gen)
        x_test = torch.as_tensor(data["x_test"], dtype=torch.float64)
    else:
        V = torch.as_tensor(V_np, dtype=dtype, device=device)
        sampler = GaussianSampler(V, torch.as_tensor(data["eigenvalue"], dtype=dtype, device=device), d, sample_gen)
        tg = torch.Generator().manual_seed(derived_seed(cfg.test_seed, 2))
        Vd = torch.as_tensor(V_np, dtype=torch.float64)
        z = torch.randn(cfg.n_test, Vd.shape[1], generator=tg, dtype=torch.float64)
        x_test = (z * torch.sqrt(torch.as_tensor(data["eigenvalue"], dtype=torch.float64) / d)) @ Vd.T
    g0 = torch.Generator().manual_seed(derived_seed(cfg.seed, 0))
    theta0 = (cfg.r0 * torch.randn(cfg.N, d, generator=g0, dtype=torch.float64)).to(device=device, dtype=dtype)
    return RunSetup(dtype=dtype, d=d, eps=eps, total=total, times=times, ksteps=measure_steps(times, eps, total),
                    V=V, sampler=sampler, sample_gen=sample_gen, x_test=x_test.to(device), theta0=theta0)
