"""How the study's training runs are packed into processes: one `mfae train` job per batch.

A *cell* is one (experiment, activation, lambda, data file): its runs differ only in N and seed, so
any of them can share a process (`mfae.train.train_batch`). Within a cell, all seeds of one N always
share a batch (they are one stacked tensor program). N groups are then packed by their estimated work:

- a group whose work is at least `train.pack_seconds` trains alone (big runs stay alone);
- the others, in increasing N, fill batches of at most `train.pack_seconds` of work (small runs share
  a process, so the interpreter, torch and data start-up is paid once).

The work is estimated with fixed rates (`PACK_RATES`: the cost model's reference CPU rates, not
a calibration of this machine and not the device the jobs run on): the packing, hence each job's
command line, depends on the config alone, so moving a study between a laptop and a cluster, or
recalibrating, retrains nothing.

Trade-off (what a config change reruns, tests/test_pack.py): changing a cell's settings (lambda,
lr, ...) reruns that cell's batches only; adding an N whose group is big trains only it; adding a
small N retrains the small batches of its cell from its position on (each at most pack_seconds of
work); adding a seed adds a run to every N group of the experiment, so it retrains the experiment's
batches. A larger pack_seconds means fewer processes, a smaller one cheaper partial reruns.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from dataclasses import dataclass
from typing import Any

from . import jobsize, layout, study, traincost


@dataclass(frozen=True)
class Batch:
    """One training job: the runs (N, seed) of one cell trained in one process, and their outputs."""

    experiment: str
    activation: str
    lam: float
    data: str                       # the data key (d48, d96_r6, real)
    runs: tuple[tuple[int, int], ...]
    paths: tuple[str, ...]          # the runs' output files, in the order of `runs`
    work_seconds: float             # estimated SGD + measurement work at the reference CPU rates

    @property
    def Ns(self) -> list[int]:
        return [n for n, _ in self.runs]

    @property
    def seeds(self) -> list[int]:
        return [s for _, s in self.runs]

    @property
    def tag(self) -> str:
        """Unique within its cell (two batches of a cell never share an N): N<first>-<last>."""
        return f"N{self.runs[0][0]}-{self.runs[-1][0]}"

    @property
    def name(self) -> str:
        """The Snakemake rule name: train_<experiment>_<activation>_lam<lam>_<data>_<tag>."""
        raw = f"train_{self.experiment}_{layout.model(self.activation, self.lam)}_{self.data}_{self.tag}"
        return raw.replace(".", "p").replace("-", "_").replace("+", "")

    @property
    def stem(self) -> str:
        """Log/benchmark file stem: <activation>_lam<lam>_<data>_<tag>."""
        return f"{layout.model(self.activation, self.lam)}_{self.data}_{self.tag}"

    def checkpoint(self, results: str) -> str:
        """The batch's checkpoint file; its name hashes the runs, so another packing never finds it."""
        digest = hashlib.sha256(repr(self.runs).encode()).hexdigest()[:10]
        return f"{layout.model_dir(results, self.experiment, self.activation, self.lam, self.data)}/batch_{self.tag}_{digest}.ckpt.pt"


# The packing's unit of work: the reference CPU rates without the memory-bound term (added later), held
# fixed so that a refinement of the cost model repacks, and so retrains, nothing.
PACK_RATES = dataclasses.replace(traincost.CPU_RATES, name="pack", bandwidth=math.inf)


def run_work_seconds(config: dict, exp: str, dkey: str, N: int) -> float:
    """Estimated seconds of one run's work (steps, measurements, final modes; no start-up) at the
    packing's rates, from the config alone."""
    return traincost.work_seconds(jobsize.sized_shape(config, exp, dkey, N), PACK_RATES)


def pack_groups(groups: list[tuple[int, float]], budget: float) -> list[list[int]]:
    """Pack N groups [(N, work seconds)] into batches: a group of work >= budget alone, the others in
    increasing N into batches of total work <= budget (a group is never split). Returns lists of N."""
    out, cur, acc = [], [], 0.0
    for N, w in sorted(groups):
        if w >= budget:
            out.append([N])
            continue
        if cur and acc + w > budget:
            out.append(cur)
            cur, acc = [], 0.0
        cur.append(N)
        acc += w
    if cur:
        out.append(cur)
    return sorted(out, key=lambda ns: ns[0])


def train_batches(config: dict) -> list[Batch]:
    """Every training job of the study (each run of study.train_jobs in exactly one batch)."""
    budget = float(study.section(config, "train")["pack_seconds"])
    cells: dict[tuple[str, str, float, str], list[dict[str, Any]]] = {}
    for j in study.train_jobs(config):
        cells.setdefault((j["experiment"], j["activation"], j["lam"], j["data"]), []).append(j)
    out = []
    for (exp, act, lam, dkey), jobs in cells.items():
        by_n: dict[int, list[dict[str, Any]]] = {}
        for j in jobs:
            by_n.setdefault(j["N"], []).append(j)
        work = {N: len(js) * run_work_seconds(config, exp, dkey, N) for N, js in by_n.items()}
        for Ns in pack_groups(list(work.items()), budget):
            js = [j for N in Ns for j in by_n[N]]
            out.append(Batch(exp, act, lam, dkey, tuple((j["N"], j["seed"]) for j in js),
                             tuple(j["path"] for j in js), sum(work[N] for N in Ns)))
    return out
