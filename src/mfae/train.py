"""Finite-N online SGD runs (docs/theory.md §2) with measurements on a time grid (§4).

`train_batch` trains several runs (same data and schedule, any N and seeds) in one process with
checkpoints, `train` one run; `train_dataset` turns a result into the `mfae train` product. A run is
set up (step size, step count, measurement steps, sampler, test set, initial weights) by
`mfae.runsetup.prepare_run`; the step itself is in `mfae.sgd`; the run's parameters and schedule in
`mfae.runconfig`.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from . import MfaeError
from .checkpoint import StackState, data_hash, fingerprint, load_checkpoint, save_checkpoint
from .measure import Measurer, second_moment_modes
from .runconfig import TrainConfig
from .runsetup import RunSetup, prepare_run
from .sgd import CudaGraphRunner, Stepper


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MfaeError("--device cuda requested but CUDA is not available; use --device auto or cpu")
    if device not in ("cpu", "cuda"):
        raise MfaeError(f"--device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


class Interrupted(Exception):
    """Raised after a checkpoint was saved on SIGTERM/SIGINT."""


def check_batchable(cfgs: Sequence[TrainConfig]) -> None:
    """Runs of one batch may differ only in N and seed (they share the data, schedule and test set)."""
    if not cfgs:
        raise MfaeError("no run to train")
    first = dataclasses.replace(cfgs[0], N=1, seed=0)
    for c in cfgs[1:]:
        other = dataclasses.replace(c, N=1, seed=0)
        if other != first:
            diff = [f.name for f in dataclasses.fields(first) if getattr(first, f.name) != getattr(other, f.name)]
            raise MfaeError(f"runs of one batch may differ only in N and seed, not in {', '.join(diff)}")
    seen = set()
    for c in cfgs:
        if (c.N, c.seed) in seen:
            raise MfaeError(f"run N={c.N} seed={c.seed} is given twice")
        seen.add((c.N, c.seed))


def stacks_of(cfgs: Sequence[TrainConfig]) -> list[list[int]]:
    """Indices of the runs trained together: one stack per N, in order of first appearance."""
    by_n: dict[int, list[int]] = {}
    for i, c in enumerate(cfgs):
        by_n.setdefault(c.N, []).append(i)
    return list(by_n.values())


def train(cfg: TrainConfig, data: Mapping[str, np.ndarray], device: torch.device, **kw) -> dict:
    """One run (docs/theory.md §2, §4): `train_batch` of one configuration (same keywords)."""
    return train_batch([cfg], data, device, **kw)[0]


def train_batch(cfgs: Sequence[TrainConfig], data: Mapping[str, np.ndarray], device: torch.device, *,
                checkpoint: Path | None = None, checkpoint_seconds: float = 300.0, progress: bool = True,
                stop_after_steps: int | None = None, log=print, cuda_graph: bool = True) -> list[dict]:
    """Run online SGD (docs/theory.md §2) for several runs in one process and measure each on the time
    grid (§4). Runs may differ only in N and seed: the runs of one N form a stack trained as one tensor
    program (`mfae.sgd.Stepper` over (R, N, d) weights), the stacks one after the other.

    Each run has its own random streams (initial weights, samples), drawn exactly as when it is trained
    alone, and the test set is shared, so every run equals its one-run result up to floating-point
    rounding (float64: ~1e-12; tests/test_batch.py). A run that diverges is flagged and frozen; the
    others go on. `data` holds numpy arrays (`mfae.data.train_inputs`). Returns one result per run, in
    the order of `cfgs`. With `checkpoint`, the batch's state is saved there every
    `checkpoint_seconds` and on SIGTERM/SIGINT, and a matching checkpoint found there is resumed.
    `stop_after_steps` (steps of the whole batch, counted over its stacks) simulates a kill (tests).
    On CUDA the steps are replayed from a CUDA graph unless `cuda_graph=False` (eager fallback with a
    logged warning if capture fails), and `cfg.tf32` allows TF32 matmuls. See docs/performance.md.
    """
    cfgs = [c.validate() for c in cfgs]
    check_batchable(cfgs)
    stacks = stacks_of(cfgs)
    runs: list[RunSetup | None] = [None] * len(cfgs)  # set up a stack at a time (its weights, samplers)
    first = prepare_run(cfgs[0], data, device)  # the schedule, eigenbasis and test set all runs share
    key = fingerprint(cfgs, data_hash(data)) if checkpoint is not None else None
    saved = load_checkpoint(checkpoint, key) if checkpoint is not None else None
    states: list[StackState | None] = saved if saved is not None else [None] * len(stacks)
    finished_before = saved is not None and all(s is not None and _finished(s, first.total) for s in saved)
    if saved is not None:
        done = sum(s.step * len(idx) for s, idx in zip(saved, stacks) if s is not None)
        log(f"resuming from checkpoint {checkpoint} at batch step {done}"
            + (" (finished: writing the outputs only)" if finished_before else ""))
    measurer = _measurer(cfgs[0], data, first, device)  # the test set's products, once for the batch

    stop = {"signal": None}

    def on_signal(signum, _frame):
        stop["signal"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if checkpoint else {}
    total = first.total * len(cfgs)
    Ns = sorted({c.N for c in cfgs})
    bar = tqdm(total=total, initial=sum(s.step * len(idx) for s, idx in zip(states, stacks) if s is not None),
               desc=(f"train {len(cfgs)} run{'s' * (len(cfgs) > 1)} d={first.d} "
                     f"N={','.join(map(str, Ns))}"), unit="step", disable=not progress, file=sys.stderr,
               mininterval=1.0 if sys.stderr.isatty() else 30.0)
    control = _Control(checkpoint, key, states, checkpoint_seconds, stop_after_steps, stop, log)
    try:
        for si, idx in enumerate(stacks):
            for i in idx:
                runs[i] = first if i == 0 else prepare_run(cfgs[i], data, device, shared=first)
            if states[si] is None:
                states[si] = _fresh_stack([runs[i] for i in idx], cfgs[idx[0]], data)
            else:
                states[si].theta = states[si].theta.to(device=device, dtype=runs[idx[0]].dtype)
                for i, rng in zip(idx, states[si].sample_rng):
                    runs[i].sample_gen.set_state(rng)
            _train_stack(cfgs[idx[0]], [runs[i] for i in idx], states[si], device, measurer, cuda_graph, bar,
                         control, first.total * sum(len(j) for j in stacks[:si]), log)
            if si + 1 < len(stacks):  # done with this stack: its state waits on the host (device memory
                states[si].sample_rng = [runs[i].sample_gen.get_state() for i in idx]  # holds one stack)
                states[si].theta = states[si].theta.cpu()
    finally:
        bar.close()
        for s, h in old.items():
            signal.signal(s, h)
    if device.type == "cuda":
        torch.cuda.synchronize()
    checkpoint_error = None
    if checkpoint is not None and not finished_before:
        # the finished state, so that a failed final write costs no retraining; the caller removes
        # the checkpoint once every output is safely in place
        for si, idx in enumerate(stacks):
            states[si].sample_rng = [runs[i].sample_gen.get_state() for i in idx]
        checkpoint_error = save_checkpoint(checkpoint, key, states)
    out: list[dict] = [{} for _ in cfgs]
    for si, idx in enumerate(stacks):
        for r, i in enumerate(idx):
            out[i] = _result(cfgs[i], runs[i], states[si], r, len(idx), checkpoint_error)
    return out


def _finished(st: StackState, total: int) -> bool:
    return st.step >= total or all(st.diverged)


class _Control:
    """Checkpoint timing, stop requests (signals, `stop_after_steps`) and the batch's state to save."""

    def __init__(self, path, key, states, every, stop_after, stop, log):
        self.path, self.key, self.states, self.every = path, key, states, every
        self.stop_after, self.stop, self.log = stop_after, stop, log
        self.last = time.monotonic()

    def after_chunk(self, batch_step: int, runs: Sequence[RunSetup], st: StackState) -> None:
        """Save a checkpoint when due; after a signal or a requested stop, save and raise Interrupted."""
        if self.path is None:
            return
        hit = self.stop_after is not None and batch_step >= self.stop_after
        sig = self.stop["signal"]
        if sig is None and not hit and time.monotonic() - self.last < self.every:
            return
        st.sample_rng = [r.sample_gen.get_state() for r in runs]
        failed = save_checkpoint(self.path, self.key, self.states)
        self.last = time.monotonic()
        if failed:  # training goes on: a lost checkpoint must not cost the runs
            self.log(f"warning: {failed}")
        if sig is not None or hit:
            why = f"signal {sig}" if sig is not None else "stop requested"
            if failed:
                raise Interrupted(f"{why} at batch step {batch_step}, but {failed}")
            raise Interrupted(f"{why}: checkpoint saved at batch step {batch_step} in {self.path}; "
                              f"rerun the same command to resume")


def _fresh_stack(runs: Sequence[RunSetup], cfg: TrainConfig, data: Mapping[str, np.ndarray]) -> StackState:
    """A stack at step 0: the runs' initial weights stacked, every measurement NaN until it is taken."""
    ng = data["group_eigenvalue"].size
    n_proj = min(cfg.N, cfg.n_projections)
    records = [dict(risk=np.full(cfg.n_times, np.nan), q=np.full(cfg.n_times, np.nan),
                    p=np.full(cfg.n_times, np.nan), c=np.full((cfg.n_times, ng), np.nan),
                    gain=np.full((cfg.n_times, ng), np.nan),
                    projection=np.full((cfg.n_times, n_proj), np.nan)) for _ in runs]
    R = len(runs)
    return StackState(theta=torch.stack([r.theta0 for r in runs]), records=records, measure_seconds=[0.0] * R,
                      diverged=[False] * R, diverged_step=[-1] * R)


def _measurer(cfg: TrainConfig, data: Mapping[str, np.ndarray], run: RunSetup, device: torch.device) -> Measurer:
    return Measurer(cfg.activation, run.x_test, run.V, data["group"], data["group_eigenvalue"],
                    data["group_fraction"], device=device, weights_dtype=run.dtype)


def _train_stack(cfg: TrainConfig, runs: Sequence[RunSetup], st: StackState, device: torch.device,
                 measurer: Measurer, cuda_graph: bool, bar, control: _Control, offset: int, log) -> None:
    """Train one stack of runs (same N) from its state to the end, measuring on the grid."""
    run0 = runs[0]
    total, ksteps, R, B = run0.total, run0.ksteps, len(runs), cfg.batch
    if _finished(st, total):
        return
    theta = st.theta
    stepper = Stepper(cfg.activation, theta, B, run0.eps, cfg.lam)
    run_steps, tf32_before = _step_runner(stepper, cfg, device, cuda_graph, log)
    xe_buf = torch.empty(cfg.block_steps, R, 2 * B, run0.d, dtype=run0.dtype, device=device)
    v_top = run0.V[:, 0].to(torch.float64)
    live = [r for r in range(R) if not st.diverged[r]]
    t_start = time.perf_counter() - st.wall_seconds

    def record(i: int) -> None:
        """Measure every live run into grid row i; a run whose risk is not finite or above
        cfg.diverge_risk is flagged diverged at this step."""
        for r in list(live):
            t0 = time.perf_counter()
            m = measurer(theta[r])
            rec = st.records[r]
            rec["risk"][i], rec["q"][i], rec["p"][i] = m["risk"], m["q"], m["p"]
            rec["c"][i], rec["gain"][i] = m["c"], m["gain"]
            rec["projection"][i] = (theta[r, : rec["projection"].shape[1]].to(torch.float64) @ v_top).cpu().numpy()
            st.measure_seconds[r] += time.perf_counter() - t0
            if not (math.isfinite(m["risk"]) and m["risk"] < cfg.diverge_risk):
                _freeze(r)

    def _freeze(r: int) -> None:
        st.diverged[r], st.diverged_step[r] = True, st.step
        theta[r].zero_()  # its last state is not used; zeros keep its share of the arithmetic finite
        live.remove(r)

    try:
        while live:
            while st.next_measure < cfg.n_times and ksteps[st.next_measure] == st.step:
                record(st.next_measure)
                st.next_measure += 1
            if not live or st.step >= total:
                break
            # chunk boundaries depend only on the step, so a resumed run draws identical samples,
            # and each run draws exactly the chunks it draws when trained alone
            end = min((st.step // cfg.block_steps + 1) * cfg.block_steps, int(ksteps[st.next_measure]), total)
            L = end - st.step
            xe = xe_buf[:L]
            for r, run in enumerate(runs):
                xe[:, r, B:] = run.sampler.draw(L * B).view(L, B, -1)
            run_steps(xe)
            st.step = end
            bar.update(L * R)
            finite = torch.isfinite(theta).flatten(1).all(1).tolist()  # one host sync per chunk
            for r in [r for r in live if not finite[r]]:
                _freeze(r)
            st.wall_seconds = time.perf_counter() - t_start
            control.after_chunk(offset + st.step * R, runs, st)
    finally:
        if tf32_before is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32_before
    st.wall_seconds = time.perf_counter() - t_start


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


def _result(cfg: TrainConfig, run: RunSetup, st: StackState, r: int, R: int, checkpoint_error: str | None) -> dict:
    """Run r of a finished stack as `train`'s result; its wall time is its share of the stack's."""
    k = min(cfg.n_modes, run.d)
    if st.diverged[r]:
        modes = (np.full(k, np.nan), np.full((run.d, k), np.nan))
    else:
        modes = second_moment_modes(st.theta[r], k)
    return dict(checkpoint_error=checkpoint_error, times=run.times, steps=run.ksteps, eps=run.eps,
                total_steps=run.total, wall_seconds=st.wall_seconds / R, measure_seconds=st.measure_seconds[r],
                records=st.records[r], diverged=st.diverged[r], diverged_step=st.diverged_step[r],
                steps_done=st.diverged_step[r] if st.diverged[r] else st.step, stack_runs=R,
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
                 wall_seconds=res["wall_seconds"], measure_seconds=res["measure_seconds"],
                 stack_runs=int(res.get("stack_runs", 1)), device=str(device), torch_version=torch.__version__,
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

