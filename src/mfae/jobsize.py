"""What each training job asks a scheduler for, and how a cluster run groups jobs into submissions.

A training job is one batch of runs (mfae.pack). Its estimate is one start-up plus every run's work
(mfae.traincost at the sizes mfae.datasize reads); its memory that of its largest stack of runs plus the
weights of the finished stacks. On a cluster, batches are packed into *submissions* (one SLURM job each,
its batches run one after another on one GPU): first-fit in decreasing work up to
`cluster.submission_minutes` of estimated work, and never beyond what fits `cluster.max_runtime_min`.

Time limit of a submission (or of any single job): SAFETY x its estimated seconds + one MARGIN_MIN,
capped at the partition's maximum; a retry (attempt k) gets k times as long, still capped. A batch
that alone exceeds the maximum gets the maximum: it checkpoints when SLURM stops it and the retry
resumes. Snakemake adds up the `runtime` of a group's jobs, so each batch of a submission asks for its
share of the submission's limit (`submission_shares`); the shares add up to the limit exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from . import study, traincost
from .datasize import data_size, fallback_size
from .runconfig import n_steps

SAFETY = 2.0       # time limit = SAFETY x the estimate + MARGIN_MIN, rounded up to whole minutes
MARGIN_MIN = 5.0   # once per job or submission: start-up on a busy node, file-system latency
MEM_SAFETY = 1.5   # memory request = MEM_SAFETY x the estimate, rounded up to 100 MB ...
MIN_MEM_MB = 1000  # ... and at least this


def job_shape(config: dict, exp: str, dkey: str, N: int) -> traincost.Shape | None:
    """The cost shape of one run (exp, data key, N), or None while its data width is unknown."""
    size = data_size(config, exp, dkey)
    return None if size is None else _shape(config, exp, size, N)


def sized_shape(config: dict, exp: str, dkey: str, N: int) -> traincost.Shape:
    """job_shape, or that of an MNIST-sized file while the width is unknown (datasize.fallback_size)."""
    return job_shape(config, exp, dkey, N) or _shape(config, exp, fallback_size(config, exp), N)


def _shape(config: dict, exp: str, size, N: int) -> traincost.Shape:
    e, t = study.experiment(config, exp), study.section(config, "train")
    return traincost.Shape(N=int(N), d=size.d, m=size.m, batch=t["batch"], steps=n_steps(e["t_max"], size.d, e["lr"]),
                           n_times=t["n_times"], n_test=size.n_test, n_train=size.n_train, dtype=t["dtype"])


def time_limit(seconds: float, attempt: int = 1, max_minutes: float | None = None) -> int:
    """Minutes a job estimated at `seconds` may run: SAFETY x the estimate + MARGIN_MIN, rounded up; a
    retry (attempt k) k times that; never above `max_minutes` (the partition's maximum)."""
    minutes = attempt * math.ceil(SAFETY * seconds / 60.0 + MARGIN_MIN)
    return min(minutes, int(max_minutes)) if max_minutes else minutes


def memory_request(mem_mb: float, attempt: int = 1) -> int:
    """The memory request (MB) for a job estimated at `mem_mb`: MEM_SAFETY x the estimate, rounded up to
    100 MB, at least MIN_MEM_MB; a retry (attempt k) k times that."""
    return attempt * max(MIN_MEM_MB, 100 * math.ceil(MEM_SAFETY * mem_mb / 100.0))


@dataclass(frozen=True)
class JobCost:
    """Estimated seconds (start to outputs written) and peak memory (MB) of one process."""

    seconds: float
    mem_mb: float


def batch_cost(config: dict, runs: Sequence[tuple[int, int]], exp: str, dkey: str, device: str) -> JobCost:
    """One `mfae train` process of the runs [(N, seed)] of one cell on `device` (calibrated rates when
    stored): one start-up plus every run's work; the memory of its largest stack (the runs of one N are
    one stack; stacks follow each other) plus the weights of finished stacks kept on the host."""
    r = traincost.rates(device)
    Ns = [n for n, _ in runs]
    startup, work, mem, kept = 0.0, 0.0, 0.0, 0.0
    for N in sorted(set(Ns)):
        s = sized_shape(config, exp, dkey, N)
        count = Ns.count(N)
        startup = max(startup, traincost.startup_seconds(s, r))
        work += count * traincost.work_seconds(s, r)
        mem = max(mem, traincost.memory_mb(s, r, runs=count))
        kept += count * N * s.d * (4 if s.dtype == "float32" else 8) / 2**20
    return JobCost(startup + work, mem + kept)  # an upper bound: the largest stack's weights count twice


@dataclass(frozen=True)
class Submission:
    """One cluster submission: the jobs (names) it runs one after another, their estimated seconds in
    all, and its time limit (minutes) at the first attempt."""

    index: int
    jobs: tuple[str, ...]
    seconds: float
    limit_min: int


def pack_submissions(seconds: dict[str, float], target_minutes: float, max_minutes: float) -> list[Submission]:
    """Jobs {name: estimated seconds} packed into submissions: first-fit in decreasing estimate (ties by
    name) up to `target_minutes` of estimated work each, and never more than fits `max_minutes` once the
    safety factor and the margin are added; a job larger than that alone. Deterministic: the same
    estimates give the same submissions wherever the workflow is read (login node, compute node)."""
    fits = max(0.0, (max_minutes - MARGIN_MIN) * 60.0 / SAFETY)
    cap = min(target_minutes * 60.0, fits)
    bins: list[list[str]] = []
    loads: list[float] = []
    for name in sorted(seconds, key=lambda n: (-seconds[n], n)):
        for i, load in enumerate(loads):
            # each job's share of the limit is at least a minute: no more jobs than minutes
            if load + seconds[name] <= cap and len(bins[i]) < time_limit(load + seconds[name]):
                bins[i].append(name)
                loads[i] += seconds[name]
                break
        else:
            bins.append([name])
            loads.append(seconds[name])
    return [Submission(i, tuple(b), load, time_limit(load, 1, max_minutes))
            for i, (b, load) in enumerate(zip(bins, loads))]


def submission_shares(sub: Submission, seconds: dict[str, float], attempt: int = 1,
                      max_minutes: float | None = None) -> dict[str, int]:
    """Each job's share (minutes) of its submission's limit at `attempt`, in proportion to its estimate;
    whole minutes that add up to the limit exactly (largest remainders), at least 1 each."""
    total = time_limit(sub.seconds, attempt, max_minutes)
    total = max(total, len(sub.jobs))
    weights = [max(seconds[j], 1e-9) for j in sub.jobs]
    extra = total - len(sub.jobs)  # after the 1 minute each
    exact = [extra * w / sum(weights) for w in weights]
    shares = [math.floor(x) for x in exact]
    order = sorted(range(len(exact)), key=lambda i: (shares[i] - exact[i], i))
    for i in order[: extra - sum(shares)]:
        shares[i] += 1
    return {j: 1 + s for j, s in zip(sub.jobs, shares)}
