"""Finite-N online SGD for the weight-tied autoencoder (SPEC §2), with measurements (SPEC §4).

Update, for a mini-batch X (B x d), weights Theta (N x d), U = X Theta^T, S = sigma(U):
    xhat = S Theta / N,   E = X - xhat,   P = E Theta^T
    d*N * grad_Theta mean_batch l = -(d/B) [ S^T E + (sigma'(U) * P)^T X ]
    Theta <- (1 - eps*lambda) Theta + (eps*d/B) [S ; sigma'(U)*P]^T [E ; X]
The two products of the gradient are fused into one matmul by stacking along the batch axis.
eps = lr/d, mean-field time t = k*eps.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import MfaeError
from .activations import check_activation, sigma_and_derivative
from .io import atomic_output
from .measure import measure, second_moment_modes


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


# --- the SGD step ---------------------------------------------------------------------------------

def sgd_direction(activation: str, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-(d*N) grad_Theta mean_batch l, unfused (the readable form; tests compare it to autograd)."""
    n = theta.shape[0]
    f = sigma_and_derivative(activation)
    u = x @ theta.T
    s, ds = f(u)
    e = x - s @ theta / n
    return (x.shape[1] / x.shape[0]) * (s.T @ e + (ds * (e @ theta.T)).T @ x)


class Stepper:
    """In-place fused SGD steps with preallocated buffers (no allocation, no host sync per step).

    Per step (tanh): 4 BLAS calls and 3 elementwise kernels, 7 torch calls in all. Every view the
    step needs (S, sigma'*P, A^T, Theta^T) is made once here, and `run` makes the per-step views of a
    whole chunk of samples with three `unbind` calls, so the loop body does no Python-side tensor
    bookkeeping: at the default sizes (B=8, N~2000, d~50) the per-call overhead is a sizeable part
    of a step (see docs/performance.md).
    """

    def __init__(self, activation: str, theta: torch.Tensor, batch: int, eps: float, lam: float):
        self.theta = theta
        n, d = theta.shape
        self.B, self.n, self.d = batch, n, d
        self.alpha = eps * d / batch
        self.beta = 1.0 - eps * lam
        self.activation = activation
        kw = dict(dtype=theta.dtype, device=theta.device)
        self.A = torch.empty(2 * batch, n, **kw)  # [S ; sigma'(U) * P]; U = X Theta^T is computed into S
        self.D = torch.empty(batch, n, **kw)      # sigma'(U)
        self._one = torch.ones(batch, n, **kw) if activation == "tanh" else None
        self._step = self._build()

    def _build(self):
        """The step as a closure over pre-made views and bound methods (fewest Python-side calls)."""
        B, th = self.B, self.theta
        thT, S, SP, AT, D, one = th.T, self.A[:B], self.A[B:], self.A.T, self.D, self._one
        alpha, beta, ninv = self.alpha, self.beta, -1.0 / self.n
        mm, addmm, th_update = torch.mm, torch.addmm, th.addmm_
        a = self.activation
        if a == "tanh":
            addcmul, S_tanh, SP_mul = torch.addcmul, S.tanh_, SP.mul_

            def step(XE, X, E):
                mm(X, thT, out=S)                                  # U = X Theta^T
                S_tanh()                                           # S = tanh(U)
                addcmul(one, S, S, value=-1.0, out=D)              # sigma'(U) = 1 - S^2
                addmm(X, S, th, beta=1.0, alpha=ninv, out=E)       # E = X - S Theta / N
                mm(E, thT, out=SP)                                 # P = E Theta^T
                SP_mul(D)                                          # sigma'(U) * P
                th_update(AT, XE, beta=beta, alpha=alpha)          # fused gradient + weight decay
        elif a == "linear":  # sigma' = 1: no derivative buffer, no product
            def step(XE, X, E):
                mm(X, thT, out=S)
                addmm(X, S, th, beta=1.0, alpha=ninv, out=E)
                mm(E, thT, out=SP)
                th_update(AT, XE, beta=beta, alpha=alpha)
        elif a == "relu":
            gt, S_clamp, SP_mul = torch.gt, S.clamp_, SP.mul_

            def step(XE, X, E):
                mm(X, thT, out=S)
                gt(S, 0, out=D)                                    # sigma'(U) = 1[U > 0] (bool -> dtype)
                S_clamp(min=0)
                addmm(X, S, th, beta=1.0, alpha=ninv, out=E)
                mm(E, thT, out=SP)
                SP_mul(D)
                th_update(AT, XE, beta=beta, alpha=alpha)
        else:  # erf: sigma' = 2/sqrt(pi) exp(-U^2)
            c = 2.0 / math.sqrt(math.pi)
            mul, S_erf, SP_mul = torch.mul, S.erf_, SP.mul_
            D_neg, D_exp, D_mul = D.neg_, D.exp_, D.mul_

            def step(XE, X, E):
                mm(X, thT, out=S)
                mul(S, S, out=D)
                D_neg()
                D_exp()
                D_mul(c)
                S_erf()
                addmm(X, S, th, beta=1.0, alpha=ninv, out=E)
                mm(E, thT, out=SP)
                SP_mul(D)
                th_update(AT, XE, beta=beta, alpha=alpha)
        return step

    def step(self, XE: torch.Tensor) -> None:
        """One step. XE is a (2B, d) buffer whose lower half holds the batch X; the upper half is
        overwritten with the residual E."""
        B = self.B
        self._step(XE, XE[B:], XE[:B])

    def run(self, xe: torch.Tensor) -> None:
        """Steps on each xe[j] in turn, j = 0..L-1, for an (L, 2B, d) chunk laid out as in `step`."""
        B, f = self.B, self._step
        for XE, X, E in zip(xe.unbind(0), xe[:, B:].unbind(0), xe[:, :B].unbind(0)):
            f(XE, X, E)


class CudaGraphRunner:
    """Replays the Stepper's kernels from a CUDA graph (CUDA only).

    One graph holds `group` consecutive steps reading a static (group, 2B, d) sample buffer; a chunk of
    L steps is `L // group` times (copy the next samples into the buffer, replay), the remainder eagerly.
    The kernels are the eager ones, so results equal the eager loop's. Warm-up runs on a side stream on a
    zero buffer (as torch.cuda.graphs asks) and Theta is restored afterwards; capture itself runs nothing.
    """

    def __init__(self, stepper: Stepper, group: int = 16):
        th = stepper.theta
        self.stepper, self.G = stepper, group
        self.static = torch.zeros(group, 2 * stepper.B, stepper.d, dtype=th.dtype, device=th.device)
        backup = th.clone()
        try:
            side = torch.cuda.Stream(device=th.device)
            side.wait_stream(torch.cuda.current_stream(th.device))
            with torch.cuda.stream(side):
                for _ in range(2):
                    stepper.run(self.static)
            torch.cuda.current_stream(th.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                stepper.run(self.static)
        finally:
            th.copy_(backup)  # the warm-up steps must not count

    def run(self, xe: torch.Tensor) -> None:
        L, G, k = xe.shape[0], self.G, 0
        while k + G <= L:
            self.static.copy_(xe[k:k + G])
            self.graph.replay()
            k += G
        if k < L:
            self.stepper.run(xe[k:])


# --- sampling ---------------------------------------------------------------------------------------

class GaussianSampler:
    """Fresh Gaussian samples x = V (sqrt(s/d) * z): Cov(x) = V diag(s) V^T / d (SPEC §2)."""

    def __init__(self, V: torch.Tensor, s: torch.Tensor, d: int, gen: torch.Generator):
        self.Vt = V.T.contiguous()
        self.scale = torch.sqrt(s / d)
        self.gen, self.m = gen, V.shape[1]

    def draw(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.m, generator=self.gen, device=self.Vt.device, dtype=self.Vt.dtype)
        return (z * self.scale) @ self.Vt


class RowSampler:
    """Rows of a finite training set drawn with replacement (SPEC §2)."""

    def __init__(self, x: torch.Tensor, gen: torch.Generator):
        self.x, self.gen = x, gen

    def draw(self, n: int) -> torch.Tensor:
        idx = torch.randint(self.x.shape[0], (n,), generator=self.gen, device=self.x.device)
        return self.x.index_select(0, idx)


# --- the run ------------------------------------------------------------------------------------------

@dataclass
class RunState:
    """Everything needed to resume: weights, step, sampler RNG state and measurements so far."""

    theta: torch.Tensor
    step: int = 0
    next_measure: int = 0
    records: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    diverged: bool = False
    diverged_step: int = -1


def time_grid(t_max: float, n_times: int) -> np.ndarray:
    return np.linspace(0.0, t_max, n_times)


def measure_steps(times: np.ndarray, eps: float, total: int) -> np.ndarray:
    """Steps at which each grid time is measured; the last one is the final step ceil(t_max/eps)."""
    k = np.minimum(np.rint(times / eps).astype(np.int64), total)
    k[-1] = total
    return k


class Interrupted(Exception):
    """Raised after a checkpoint was saved on SIGTERM/SIGINT."""


def train(cfg: TrainConfig, data: dict, device: torch.device, *, checkpoint: Path | None = None,
          checkpoint_seconds: float = 300.0, progress: bool = True, stop_after_steps: int | None = None,
          log=print, cuda_graph: bool = True) -> dict:
    """Run online SGD as in SPEC §2 and measure on the time grid (SPEC §4).

    `data` holds numpy arrays: eigenvector (d, m), eigenvalue (m,), group (m,), group_eigenvalue,
    group_fraction, and for real data x_train, x_test. Returns the measurement arrays and run info.
    With `checkpoint`, state is saved there every `checkpoint_seconds` and on SIGTERM/SIGINT, and a
    matching checkpoint found there is resumed. `stop_after_steps` simulates a kill (tests).
    On CUDA the steps are replayed from a CUDA graph unless `cuda_graph=False` (eager fallback with a
    logged warning if capture fails), and `cfg.tf32` allows TF32 matmuls. See docs/performance.md.
    """
    cfg.validate()
    dtype = getattr(torch, cfg.dtype)
    V_np = data["eigenvector"]
    d = V_np.shape[0]
    eps = cfg.lr / d
    total = math.ceil(cfg.t_max / eps - 1e-9)
    times = time_grid(cfg.t_max, cfg.n_times)
    ksteps = measure_steps(times, eps, total)
    ng = data["group_eigenvalue"].size

    V = torch.as_tensor(V_np, dtype=dtype, device=device)
    sample_gen = torch.Generator(device=device).manual_seed(derived_seed(cfg.seed, 1))
    if "x_train" in data:
        xtr = torch.as_tensor(data["x_train"], dtype=dtype, device=device)
        sampler = RowSampler(xtr, sample_gen)
        x_test = torch.as_tensor(data["x_test"], dtype=torch.float64)
    else:
        sampler = GaussianSampler(V, torch.as_tensor(data["eigenvalue"], dtype=dtype, device=device), d, sample_gen)
        tg = torch.Generator().manual_seed(derived_seed(cfg.test_seed, 2))
        Vd = torch.as_tensor(V_np, dtype=torch.float64)
        z = torch.randn(cfg.n_test, Vd.shape[1], generator=tg, dtype=torch.float64)
        x_test = (z * torch.sqrt(torch.as_tensor(data["eigenvalue"]) / d)) @ Vd.T
    x_test = x_test.to(device)

    state = _load_checkpoint(checkpoint, cfg, data) if checkpoint else None
    if state is None:
        g0 = torch.Generator().manual_seed(derived_seed(cfg.seed, 0))
        theta0 = cfg.r0 * torch.randn(cfg.N, d, generator=g0, dtype=torch.float64)
        state = RunState(theta=theta0.to(device=device, dtype=dtype))
        state.records = dict(risk=np.full(cfg.n_times, np.nan), q=np.full(cfg.n_times, np.nan),
                             p=np.full(cfg.n_times, np.nan), c=np.full((cfg.n_times, ng), np.nan),
                             gain=np.full((cfg.n_times, ng), np.nan),
                             projection=np.full((cfg.n_times, min(cfg.N, cfg.n_projections)), np.nan))
    else:
        state.theta = state.theta.to(device=device, dtype=dtype)
        sample_gen.set_state(state.sample_rng)
        log(f"resuming from checkpoint {checkpoint} at step {state.step}/{total}")

    theta = state.theta
    stepper = Stepper(cfg.activation, theta, cfg.batch, eps, cfg.lam)
    B = cfg.batch
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
    xe_buf = torch.empty(cfg.block_steps, 2 * B, theta.shape[1], dtype=dtype, device=device)
    v_top = V[:, 0].to(torch.float64)

    def record(i: int) -> bool:
        m = measure(cfg.activation, theta, x_test, V, data["group"], data["group_eigenvalue"], data["group_fraction"])
        rec = state.records
        rec["risk"][i], rec["q"][i], rec["p"][i] = m["risk"], m["q"], m["p"]
        rec["c"][i], rec["gain"][i] = m["c"], m["gain"]
        rec["projection"][i] = (theta[: rec["projection"].shape[1]].to(torch.float64) @ v_top).cpu().numpy()
        return math.isfinite(m["risk"]) and m["risk"] < cfg.diverge_risk

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
                    state.wall_seconds = time.perf_counter() - t_start
                    _save_checkpoint(checkpoint, cfg, data, state, sample_gen)
                    last_ckpt = time.monotonic()
                    if stop["signal"] is not None or hit_stop:
                        why = f"signal {stop['signal']}" if stop["signal"] else "stop requested"
                        raise Interrupted(f"{why}: checkpoint saved at step {state.step}/{total} in {checkpoint}; "
                                          f"rerun the same command to resume")
    finally:
        bar.close()
        if tf32_before is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32_before
        for s, h in old.items():
            signal.signal(s, h)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t_start
    modes = second_moment_modes(theta, min(cfg.n_modes, d)) if not state.diverged else (
        np.full(min(cfg.n_modes, d), np.nan), np.full((d, min(cfg.n_modes, d)), np.nan))
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return dict(times=times, steps=ksteps, eps=eps, total_steps=total, wall_seconds=wall, records=state.records,
                diverged=state.diverged, diverged_step=state.diverged_step, steps_done=state.step,
                learned_eigenvalue=modes[0], learned_eigenvector=modes[1])


def _fingerprint(cfg: TrainConfig, data: dict) -> dict:
    return dict(config=asdict(cfg), d=int(data["eigenvector"].shape[0]),
                data_hash=float(np.sum(data["eigenvector"][:, :1]) + np.sum(data["eigenvalue"])))


def _save_checkpoint(path: Path, cfg: TrainConfig, data: dict, state: RunState, gen: torch.Generator) -> None:
    payload = dict(fingerprint=_fingerprint(cfg, data), theta=state.theta.detach().cpu().clone(), step=state.step,
                   next_measure=state.next_measure, records=state.records, wall_seconds=state.wall_seconds,
                   sample_rng=gen.get_state().cpu())
    with atomic_output(path) as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, cfg: TrainConfig, data: dict) -> RunState | None:
    if not path.exists():
        return None
    try:
        p = torch.load(path, weights_only=False)
    except Exception as exc:
        raise MfaeError(f"checkpoint {path} is unreadable ({exc}); delete it to start afresh") from None
    fp = _fingerprint(cfg, data)
    if p.get("fingerprint") != fp:
        old = p.get("fingerprint", {}).get("config", {})
        diff = sorted(k for k in set(old) | set(fp["config"]) if old.get(k) != fp["config"].get(k))
        raise MfaeError(f"checkpoint {path} was made with different parameters ({', '.join(diff) or 'data'}); "
                        f"refusing to mix runs: delete it or use the original parameters")
    st = RunState(theta=p["theta"], step=p["step"], next_measure=p["next_measure"], records=p["records"],
                  wall_seconds=p["wall_seconds"])
    st.sample_rng = p["sample_rng"]
    return st
