"""One SGD run's parameters and the arithmetic that derives its schedule from them (docs/theory.md §2,
§4): the step count, the measurement grid and the steps it falls on, and independent seeds per random
stream. A leaf module: the trainer, the checkpoints and the planner share it without importing each other.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import MfaeError
from .activations import check_activation
from .constants import SEED_MAX, SIZE_MAX
from .defaults import EXPERIMENT as _EXPERIMENT
from .defaults import RUN as _RUN
from .defaults import SECTIONS as _SECTIONS

_TRAIN = _SECTIONS["train"]


def n_steps(t_max: float, d: int, lr: float) -> int:
    """SGD steps of a run: ceil(t_max / eps) with eps = lr/d (docs/theory.md §2); the one count, used by
    the trainer and the planner, so that they cannot disagree on a rounding edge."""
    return math.ceil(t_max / (lr / d) - 1e-9)


@dataclass(frozen=True)
class TrainConfig:
    """Every parameter of one SGD run. Units: lr = eps*d (dimensionless), t_max in mean-field time.
    The defaults are the config's (mfae.defaults: a run's first activation, lambda and seed)."""

    N: int
    seed: int = _EXPERIMENT["seeds"][0]
    activation: str = _EXPERIMENT["activations"][0]
    lam: float = _EXPERIMENT["lams"][0]
    r0: float = _EXPERIMENT["r0"]
    lr: float = _EXPERIMENT["lr"]
    batch: int = _TRAIN["batch"]
    t_max: float = float(_EXPERIMENT["t_max"])
    n_times: int = _TRAIN["n_times"]
    dtype: str = _TRAIN["dtype"]
    n_test: int = _TRAIN["n_test"]
    test_seed: int = _RUN["test_seed"]
    block_steps: int = _RUN["block_steps"]
    diverge_risk: float = _RUN["diverge_risk"]
    n_projections: int = _RUN["n_projections"]
    n_modes: int = _RUN["n_modes"]
    tf32: bool = False  # CUDA float32 matmuls in TF32 (faster, ~1e-3 relative rounding); off by default

    def validate(self) -> "TrainConfig":
        check_activation(self.activation)
        for name in ("N", "batch", "n_times", "n_test", "block_steps"):
            if getattr(self, name) < 1:
                raise MfaeError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.n_times < 2:
            raise MfaeError(f"--n-times must be >= 2 (the grid includes 0 and t_max), got {self.n_times}")
        for name in ("lr", "r0", "t_max"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise MfaeError(f"--{name.replace('_', '-')} must be a positive number, got {v}")
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise MfaeError(f"--lam must be >= 0, got {self.lam}")
        if not (math.isfinite(self.diverge_risk) and self.diverge_risk > 0):
            raise MfaeError(f"--diverge-risk must be a positive number, got {self.diverge_risk}")
        if not 0 <= self.seed <= SEED_MAX:
            raise MfaeError(f"--seed must be in [0, {SEED_MAX}], got {self.seed}")
        for name in ("N", "batch", "n_times", "n_test", "block_steps", "n_projections", "n_modes"):
            if getattr(self, name) > SIZE_MAX:
                raise MfaeError(f"--{name.replace('_', '-')} must be <= {SIZE_MAX}, got {getattr(self, name)}")
        if not isinstance(self.tf32, bool):
            raise MfaeError(f"tf32 must be true or false, got {self.tf32!r}")
        if self.dtype not in ("float32", "float64"):
            raise MfaeError(f"--dtype must be float32 or float64, got {self.dtype}")
        return self


def derived_seed(seed: int, stream: int) -> int:
    """Independent seeds for init / samples / test set from one user seed."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, np.uint64)[0] >> 1)


def time_grid(t_max: float, n_times: int) -> np.ndarray:
    return np.linspace(0.0, t_max, n_times)


def check_grid(cfg: TrainConfig, d: int) -> None:
    """The time grid must not ask for more measurements than there are steps (+1 for step 0):
    otherwise measurements would silently repeat at the same step."""
    total = n_steps(cfg.t_max, d, cfg.lr)
    if cfg.n_times > total + 1:
        raise MfaeError(f"--n-times {cfg.n_times} exceeds the {total + 1} distinct steps of this run "
                        f"(t_max={cfg.t_max:g}, eps=lr/d={cfg.lr / d:.3g}); use --n-times <= {total + 1}")


def measure_steps(times: np.ndarray, eps: float, total: int) -> np.ndarray:
    """Steps at which each grid time is measured; the last one is the final step ceil(t_max/eps)."""
    k = np.minimum(np.rint(times / eps).astype(np.int64), total)
    k[-1] = total
    return k


