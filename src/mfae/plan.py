"""`mfae plan`: the jobs a study gives a scheduler, before it runs. The same plan sets the workflow's
training resources (workflow/rules/common.smk), so what `mfae plan` prints is what SLURM is asked.

- one row per training job: a batch of runs (mfae.pack), its estimated seconds and memory on the
  device, and the limits it asks for alone;
- the submissions a cluster run makes of them (mfae.jobsize.pack_submissions) and their time limits;
- on request, one row per run (what each run would cost alone), the keys of results/runs.csv.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import jobsize, pack, study, traincost
from .layout import fmt

BATCH_COLUMNS = ("job", "experiment", "activation", "lam", "data", "d", "runs", "N", "seeds", "steps",
                 "est_seconds", "mem_mb", "runtime_min", "submission")
RUN_COLUMNS = ("experiment", "activation", "lam", "d", "N", "seed", "steps", "flops", "est_seconds", "mem_mb",
               "runtime_min")
SUBMISSION_COLUMNS = ("submission", "jobs", "runs", "est_seconds", "runtime_min", "mem_mb")


def gives_gpu(resources: dict) -> bool:
    """Whether a rule's resources (a profile's `set-resources: train:`) ask for a GPU: gpu, gpus, or a
    gres naming one."""
    return any(k in ("gpu", "gpus") or (k == "gres" and "gpu" in str(v)) for k, v in dict(resources or {}).items())


def plan_device(config: dict, *, gpu: bool) -> str:
    """The device whose rates estimate the training jobs: `train.plan_device` when cpu or cuda; for
    auto, `train.device` when cpu or cuda; for device auto, cuda when the training jobs are given a
    GPU (`gpu`: profiles/slurm's set-resources train: gpu: 1) and cpu otherwise (a local run)."""
    t = study.section(config, "train")
    for key in ("plan_device", "device"):
        if t.get(key) in traincost.DEVICES:
            return t[key]
    return "cuda" if gpu else "cpu"


@dataclass(frozen=True)
class StudyPlan:
    """The training jobs of a study on one device: batches, their cost, and the cluster submissions."""

    device: str
    batches: tuple[pack.Batch, ...]
    cost: dict[str, jobsize.JobCost]         # by batch (rule) name
    submissions: tuple[jobsize.Submission, ...]
    max_minutes: float

    def submission_of(self, name: str) -> jobsize.Submission:
        return next(s for s in self.submissions if name in s.jobs)

    def resources(self, name: str, attempt: int = 1, grouped: bool = False) -> dict[str, int]:
        """`runtime` (minutes) and `mem_mb` of a batch's job: alone, its own limit; grouped into its
        submission (a cluster run), its share of the submission's limit (Snakemake adds them up)."""
        c = self.cost[name]
        if grouped:
            seconds = {n: self.cost[n].seconds for n in self.submission_of(name).jobs}
            runtime = jobsize.submission_shares(self.submission_of(name), seconds, attempt, self.max_minutes)[name]
        else:
            runtime = jobsize.time_limit(c.seconds, attempt, self.max_minutes)
        return dict(runtime=runtime, mem_mb=jobsize.memory_request(c.mem_mb, attempt))


def study_plan(config: dict, device: str) -> StudyPlan:
    """Every training batch of the study, costed on `device`, and the submissions of a cluster run."""
    batches = tuple(pack.train_batches(config))
    cost = {b.name: jobsize.batch_cost(config, b.runs, b.experiment, b.data, device) for b in batches}
    c = study.section(config, "cluster")
    subs = jobsize.pack_submissions({n: x.seconds for n, x in cost.items()}, c["submission_minutes"],
                                    c["max_runtime_min"])
    return StudyPlan(device, batches, cost, tuple(subs), c["max_runtime_min"])


def batch_rows(config: dict, sp: StudyPlan) -> list[dict[str, Any]]:
    """One row per training job (BATCH_COLUMNS); N and seeds are space-separated lists."""
    rows = []
    for b in sp.batches:
        s = jobsize.sized_shape(config, b.experiment, b.data, max(b.Ns))
        res = sp.resources(b.name)
        rows.append(dict(job=b.name, experiment=b.experiment, activation=b.activation, lam=b.lam, data=b.data,
                         d=s.d, runs=len(b.runs), N=" ".join(map(str, b.Ns)), seeds=" ".join(map(str, b.seeds)),
                         steps=s.steps, est_seconds=round(sp.cost[b.name].seconds, 2),
                         mem_mb=res["mem_mb"], runtime_min=res["runtime"], submission=sp.submission_of(b.name).index))
    return rows


def submission_rows(sp: StudyPlan) -> list[dict[str, Any]]:
    """One row per cluster submission (SUBMISSION_COLUMNS): its limit and its largest memory request."""
    runs = {b.name: len(b.runs) for b in sp.batches}
    return [dict(submission=s.index, jobs=len(s.jobs), runs=sum(runs[j] for j in s.jobs),
                 est_seconds=round(s.seconds, 2), runtime_min=s.limit_min,
                 mem_mb=max(sp.resources(j)["mem_mb"] for j in s.jobs)) for s in sp.submissions]


def run_rows(config: dict, device: str) -> list[dict[str, Any]]:
    """One row per run (RUN_COLUMNS), each costed as if trained alone; blank estimates for a run whose
    data width is unknown (a user array that does not exist yet)."""
    r, max_minutes = traincost.rates(device), study.section(config, "cluster")["max_runtime_min"]
    out = []
    for j in study.train_jobs(config):
        s = jobsize.job_shape(config, j["experiment"], j["data"], j["N"])
        row = {k: j[k] for k in RUN_COLUMNS[:6]}
        if s is None:
            row.update(steps=None, flops=None, est_seconds=None, mem_mb=None, runtime_min=None)
        else:
            sec = traincost.est_seconds(s, r)
            row.update(d=s.d, steps=s.steps, flops=float(f"{traincost.flops(s):.4g}"), est_seconds=round(sec, 2),
                       mem_mb=round(traincost.memory_mb(s, r), 1), runtime_min=jobsize.time_limit(sec, 1, max_minutes))
        out.append(row)
    return out


def unknown_runs(config: dict) -> int:
    """Runs whose data width is unknown until their data file exists (sized as MNIST meanwhile)."""
    return sum(jobsize.job_shape(config, j["experiment"], j["data"], j["N"]) is None for j in study.train_jobs(config))


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.2g} min" if seconds < 5940 else f"{seconds / 3600:.2g} h"


def summary_row(config: dict, label: str) -> str:
    """README's cost table row of a config (uncalibrated rates: `MFAE_RATES=none mfae plan --table-row`):
    runs, training jobs, GPU: hours, longest job, submissions and their limits in all; CPU: hours,
    longest job; largest memory request CPU / GPU."""
    gpu, cpu = study_plan(config, "cuda"), study_plan(config, "cpu")
    cells = [label, str(sum(len(b.runs) for b in gpu.batches)), str(len(gpu.batches))]
    for sp in (gpu, cpu):
        secs = [c.seconds for c in sp.cost.values()]
        cells += [f"{sum(secs) / 3600:.2g}", _minutes(max(secs))]
        if sp is gpu:
            cells.append(f"{len(sp.submissions)} / {sum(s.limit_min for s in sp.submissions)} min")
    mem = [max(sp.resources(b.name)["mem_mb"] for b in sp.batches) for sp in (cpu, gpu)]
    cells.append(f"{mem[0]} / {mem[1]}")
    return "| " + " | ".join(cells) + " |"


def describe_limits(config: dict) -> str:
    c = study.section(config, "cluster")
    return (f"cluster.submission_minutes = {fmt(c['submission_minutes'])}, "
            f"cluster.max_runtime_min = {fmt(c['max_runtime_min'])}")
