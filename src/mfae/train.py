"""Finite-N online SGD runs (docs/theory.md §2) with measurements on a time grid (§4).

`prepare_run` sets a run up (step size, step count, measurement steps, sampler, test set, initial
weights); `train` runs it with checkpoints; `train_dataset` turns the result into the `mfae train`
product. The step itself is in `mfae.sgd`.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from . import MfaeError
from .activations import check_activation
from .checkpoint import RunState
from .checkpoint import load_checkpoint as _load_checkpoint
from .checkpoint import save_checkpoint as _save_checkpoint
from .measure import Measurer, second_moment_modes
from .plan import n_steps
from .sgd import CudaGraphRunner, Stepper


@dataclass(frozen=True)
class TrainConfig:
    """Every parameter of one SGD run. Units: lr = eps*d (dimensionless), t_max in mean-field time."""

    N: int
    seed: int = 0
    activation: str = "tanh"
    lam: float = 0.1
    r0: float = 0.3
    lr: float = 0.12
    batch: int = 8
    t_max: float = 6.0
    n_times: int = 50
    dtype: str = "float32"
    n_test: int = 4096
    test_seed: int = 20210216
    block_steps: int = 256
    diverge_risk: float = 1e4
    n_projections: int = 1000
    n_modes: int = 16
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
        from .study import SEED_MAX, SIZE_MAX

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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MfaeError("--device cuda requested but CUDA is not available; use --device auto or cpu")
    if device not in ("cpu", "cuda"):
        raise MfaeError(f"--device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


# --- sampling ---------------------------------------------------------------------------------------

class GaussianSampler:
    """Fresh Gaussian samples x = V (sqrt(s/d) * z): Cov(x) = V diag(s) V^T / d (docs/theory.md §2)."""

    def __init__(self, V: torch.Tensor, s: torch.Tensor, d: int, gen: torch.Generator):
        self.Vt = V.T.contiguous()
        self.scale = torch.sqrt(s / d)
        self.gen, self.m = gen, V.shape[1]

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


# --- the run ------------------------------------------------------------------------------------------

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


class Interrupted(Exception):
    """Raised after a checkpoint was saved on SIGTERM/SIGINT."""


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


def prepare_run(cfg: TrainConfig, data: Mapping[str, np.ndarray], device: torch.device) -> RunSetup:
    """Set up one run (see `RunSetup`); `data` comes from `mfae.data.train_inputs`."""
    dtype = getattr(torch, cfg.dtype)
    V_np = data["eigenvector"]
    d = V_np.shape[0]
    eps = cfg.lr / d
    total = n_steps(cfg.t_max, d, cfg.lr)
    check_grid(cfg, d)
    times = time_grid(cfg.t_max, cfg.n_times)
    V = torch.as_tensor(V_np, dtype=dtype, device=device)
    sample_gen = torch.Generator(device=device).manual_seed(derived_seed(cfg.seed, 1))
    if "x_train" in data:
        sampler = RowSampler(torch.as_tensor(data["x_train"], dtype=dtype, device=device), sample_gen)
        x_test = torch.as_tensor(data["x_test"], dtype=torch.float64)
    else:
        sampler = GaussianSampler(V, torch.as_tensor(data["eigenvalue"], dtype=dtype, device=device), d, sample_gen)
        tg = torch.Generator().manual_seed(derived_seed(cfg.test_seed, 2))
        Vd = torch.as_tensor(V_np, dtype=torch.float64)
        z = torch.randn(cfg.n_test, Vd.shape[1], generator=tg, dtype=torch.float64)
        x_test = (z * torch.sqrt(torch.as_tensor(data["eigenvalue"], dtype=torch.float64) / d)) @ Vd.T
    g0 = torch.Generator().manual_seed(derived_seed(cfg.seed, 0))
    theta0 = (cfg.r0 * torch.randn(cfg.N, d, generator=g0, dtype=torch.float64)).to(device=device, dtype=dtype)
    return RunSetup(dtype=dtype, d=d, eps=eps, total=total, times=times, ksteps=measure_steps(times, eps, total),
                    V=V, sampler=sampler, sample_gen=sample_gen, x_test=x_test.to(device), theta0=theta0)


def train(cfg: TrainConfig, data: Mapping[str, np.ndarray], device: torch.device, *,
          checkpoint: Path | None = None, checkpoint_seconds: float = 300.0, progress: bool = True,
          stop_after_steps: int | None = None, log=print, cuda_graph: bool = True) -> dict:
    """Run online SGD (docs/theory.md §2) and measure on the time grid (§4).

    `data` holds numpy arrays (`mfae.data.train_inputs`). Returns the measurement arrays and run info.
    With `checkpoint`, state is saved there every `checkpoint_seconds` and on SIGTERM/SIGINT, and a
    matching checkpoint found there is resumed. `stop_after_steps` simulates a kill (tests).
    On CUDA the steps are replayed from a CUDA graph unless `cuda_graph=False` (eager fallback with a
    logged warning if capture fails), and `cfg.tf32` allows TF32 matmuls. See docs/performance.md.
    """
    cfg.validate()
    run = prepare_run(cfg, data, device)
    d, total, ksteps, sampler, sample_gen = run.d, run.total, run.ksteps, run.sampler, run.sample_gen
    state = _initial_state(cfg, data, run, device, checkpoint, log)
    finished = state.step >= total or state.diverged  # a finished run's checkpoint: nothing to redo

    theta = state.theta
    stepper = Stepper(cfg.activation, theta, cfg.batch, run.eps, cfg.lam)
    B = cfg.batch
    run_steps, tf32_before = _step_runner(stepper, cfg, device, cuda_graph, log)
    xe_buf = torch.empty(cfg.block_steps, 2 * B, theta.shape[1], dtype=run.dtype, device=device)
    record = _recorder(cfg, data, run, device, state)

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if checkpoint else {}
    t_start = time.perf_counter() - state.wall_seconds
    last_ckpt = time.monotonic()
    bar = tqdm(total=total, initial=state.step, desc=f"train N={cfg.N} d={d} seed={cfg.seed}", unit="step",
               disable=not progress, file=sys.stderr, mininterval=1.0 if sys.stderr.isatty() else 30.0)
    try:
        while not state.diverged:
            # measure every grid point whose step has been reached
            while state.next_measure < cfg.n_times and ksteps[state.next_measure] == state.step:
                if not record(state.next_measure):
                    state.diverged, state.diverged_step = True, state.step
                    break
                state.next_measure += 1
            if state.diverged or state.step >= total:
                break
            # chunk boundaries depend only on the step, so a resumed run draws identical samples
            end = min((state.step // cfg.block_steps + 1) * cfg.block_steps, int(ksteps[state.next_measure]), total)
            L = end - state.step
            xe = xe_buf[:L]
            xe[:, B:] = sampler.draw(L * B).view(L, B, -1)
            run_steps(xe)
            state.step = end
            bar.update(L)
            if not bool(torch.isfinite(theta).all()):  # one host sync per chunk
                state.diverged, state.diverged_step = True, state.step
                break
            if checkpoint is not None:
                hit_stop = stop_after_steps is not None and state.step >= stop_after_steps
                if stop["signal"] is not None or hit_stop or time.monotonic() - last_ckpt >= checkpoint_seconds:
                    why = ((f"signal {stop['signal']}" if stop["signal"] else "stop requested")
                           if stop["signal"] is not None or hit_stop else None)
                    _save_midrun(checkpoint, cfg, data, state, sample_gen, time.perf_counter() - t_start, why,
                                 total, log)
                    last_ckpt = time.monotonic()
    finally:
        bar.close()
        if tf32_before is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32_before
        for s, h in old.items():
            signal.signal(s, h)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return _result(cfg, data, run, state, time.perf_counter() - t_start, checkpoint, finished)


def _initial_state(cfg: TrainConfig, data: Mapping[str, np.ndarray], run: RunSetup, device: torch.device,
                   checkpoint: Path | None, log) -> RunState:
    """A matching checkpoint's state (its sampler RNG state restored), else a fresh state at step 0
    with every measurement NaN until it is taken."""
    state = _load_checkpoint(checkpoint, cfg, data) if checkpoint else None
    if state is None:
        ng = data["group_eigenvalue"].size
        state = RunState(theta=run.theta0)
        state.records = dict(risk=np.full(cfg.n_times, np.nan), q=np.full(cfg.n_times, np.nan),
                             p=np.full(cfg.n_times, np.nan), c=np.full((cfg.n_times, ng), np.nan),
                             gain=np.full((cfg.n_times, ng), np.nan),
                             projection=np.full((cfg.n_times, min(cfg.N, cfg.n_projections)), np.nan))
    else:
        state.theta = state.theta.to(device=device, dtype=run.dtype)
        run.sample_gen.set_state(state.sample_rng)
        log(f"resuming from checkpoint {checkpoint} at step {state.step}/{run.total}"
            + (" (finished: writing the output only)" if state.step >= run.total or state.diverged else ""))
    return state


def _step_runner(stepper: Stepper, cfg: TrainConfig, device: torch.device, cuda_graph: bool, log):
    """The function running a chunk of steps (a CUDA graph replay on CUDA unless disabled or capture
    fails, else the eager loop), and the TF32 setting to restore afterwards (None off CUDA)."""
    run_steps = stepper.run
    tf32_before = None
    if device.type == "cuda":
        tf32_before = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = bool(cfg.tf32)
        if cuda_graph:
            try:
                run_steps = CudaGraphRunner(stepper, min(16, cfg.block_steps)).run
            except Exception as exc:  # capture is best effort: the eager loop gives the same result
                torch.cuda.synchronize(device)
                log(f"warning: CUDA graph capture failed ({type(exc).__name__}: {exc}); running eagerly")
                run_steps = stepper.run
    return run_steps, tf32_before


def _recorder(cfg: TrainConfig, data: Mapping[str, np.ndarray], run: RunSetup, device: torch.device,
              state: RunState):
    """record(i): measure state.theta into grid row i; False once the run diverged (risk not finite or
    above cfg.diverge_risk)."""
    theta, v_top = state.theta, run.V[:, 0].to(torch.float64)
    measure = Measurer(cfg.activation, run.x_test, run.V, data["group"], data["group_eigenvalue"],
                       data["group_fraction"], device=device, weights_dtype=run.dtype)  # test-set products, once

    def record(i: int) -> bool:
        t0 = time.perf_counter()
        m = measure(theta)
        rec = state.records
        rec["risk"][i], rec["q"][i], rec["p"][i] = m["risk"], m["q"], m["p"]
        rec["c"][i], rec["gain"][i] = m["c"], m["gain"]
        rec["projection"][i] = (theta[: rec["projection"].shape[1]].to(torch.float64) @ v_top).cpu().numpy()
        state.measure_seconds += time.perf_counter() - t0
        return math.isfinite(m["risk"]) and m["risk"] < cfg.diverge_risk

    return record


def _save_midrun(checkpoint: Path, cfg: TrainConfig, data: Mapping[str, np.ndarray], state: RunState,
                 sample_gen: torch.Generator, wall: float, why: str | None, total: int, log) -> None:
    """Save a checkpoint during the run; after a signal or a requested stop (`why`), raise Interrupted."""
    state.wall_seconds = wall
    failed = _save_checkpoint(checkpoint, cfg, data, state, sample_gen)
    if failed:  # training goes on: a lost checkpoint must not cost the run
        log(f"warning: {failed}")
    if why is not None:
        if failed:
            raise Interrupted(f"{why} at step {state.step}/{total}, but {failed}")
        raise Interrupted(f"{why}: checkpoint saved at step {state.step}/{total} in {checkpoint}; "
                          f"rerun the same command to resume")


def _result(cfg: TrainConfig, data: Mapping[str, np.ndarray], run: RunSetup, state: RunState, wall: float,
            checkpoint: Path | None, finished: bool) -> dict:
    """`train`'s result; a run that trained saves its finished state to `checkpoint` first."""
    d, theta = run.d, state.theta
    modes = second_moment_modes(theta, min(cfg.n_modes, d)) if not state.diverged else (
        np.full(min(cfg.n_modes, d), np.nan), np.full((d, min(cfg.n_modes, d)), np.nan))
    if checkpoint is not None and not finished:
        # the finished state, so that a failed final write costs no retraining; the caller removes
        # the checkpoint once its output is safely in place
        state.wall_seconds = wall
        checkpoint_error = _save_checkpoint(checkpoint, cfg, data, state, run.sample_gen)
    else:
        checkpoint_error = None
    return dict(checkpoint_error=checkpoint_error, times=run.times, steps=run.ksteps, eps=run.eps,
                total_steps=run.total, wall_seconds=wall, measure_seconds=state.measure_seconds,
                records=state.records,
                diverged=state.diverged, diverged_step=state.diverged_step, steps_done=state.step,
                learned_eigenvalue=modes[0], learned_eigenvector=modes[1])


def train_dataset(res: Mapping[str, Any], data: Mapping[str, np.ndarray], device: torch.device,
                  params: Mapping[str, Any], data_attrs: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The `mfae train` product (docs/theory.md §6) from a `train` result: the (time, group) curves,
    the step of each grid time, the projections on v_1, the learned second-moment modes, and
    provenance attrs (every parameter in `params`, divergence, steps, wall time, device)."""
    from .io import curves_dataset, provenance

    rec = res["records"]
    data_attrs = data_attrs or {}
    attrs = provenance("train", params)
    attrs.update(diverged=int(res["diverged"]), diverged_step=res["diverged_step"], steps=res["total_steps"],
                 steps_done=res["steps_done"], eps=res["eps"], d=int(data["eigenvector"].shape[0]),
                 wall_seconds=res["wall_seconds"], measure_seconds=res["measure_seconds"], device=str(device), torch_version=torch.__version__,
                 data_name=data_attrs.get("name", ""), data_kind=data_attrs.get("kind", ""))
    out = curves_dataset(res["times"], rec["c"], rec["gain"], rec["risk"], rec["q"], rec["p"],
                         data["group_eigenvalue"], data["group_fraction"], attrs)
    out["step"] = ("time", res["steps"], dict(long_name="SGD step k at which the grid time is measured"))
    out["projection"] = (("time", "neuron"), rec["projection"],
                         dict(long_name="<theta_i, v_1>: weights projected on the top eigen-direction", units="1"))
    out["learned_eigenvalue"] = ("mode", res["learned_eigenvalue"],
                                 dict(long_name="eigenvalues of (1/N) sum_i theta_i theta_i^T at t_max", units="1"))
    out["learned_eigenvector"] = (("feature", "mode"), res["learned_eigenvector"],
                                  dict(long_name="eigenvectors of (1/N) sum_i theta_i theta_i^T at t_max"))
    return out

