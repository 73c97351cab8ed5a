"""What the workflow's other jobs cost: data, mean field, convergence, figures, runs table, fetch (their
SLURM `runtime` and `mem_mb`; training is mfae.jobsize).

Each is one CPU process dominated by its imports and, for real data, by n x d arrays. Memory: a
baseline (peak RSS of the stage's imports, measured) plus its arrays; time: a start-up plus its work,
both scaled like the training jobs' CPU start-up and throughput when this machine is calibrated.
tests/test_resources.py runs each stage's largest jobs (default study, Fashion-MNIST at d = 784) and
checks that the request covers their measured peak.
"""

from __future__ import annotations

from . import MfaeError, study
from .arrays import array_shape
from .constants import REAL_SHAPES
from .jobsize import JobCost, memory_request, time_limit
from .traincost import CPU_RATES, N_PROJECTIONS, rates

STAGES = ("fetch", "data", "meanfield", "convergence", "figure", "runs_table")
LIGHT_BASE_MB = 110.0      # python + numpy + xarray + netCDF4 (peak RSS of `mfae data gaussian`: ~103 MB)
FIGURE_BASE_MB = 230.0     # + matplotlib and seaborn (peak RSS of the figure jobs: 175-220 MB)
FIT_BASE_MB = 150.0        # + the convergence fits' arrays (peak RSS of `mfae convergence`: ~147 MB)
DATA_COPIES = 6.0          # float64 n x d arrays alive at once in `mfae data` on real data (validated copy,
#                            unique rows, the split, centred and normalised rows, raw copies): 70000 x 784
#                            Fashion-MNIST peaks at 2365 MB = 103 MB + 5.4 x 419 MB
LIGHT_STARTUP_S = 1.0      # seconds to import the light stages' libraries and read small inputs
FIGURE_STARTUP_S = 4.0     # + matplotlib/seaborn and drawing and writing a PNG and a PDF
ELEMENT_S = 2e-7           # seconds per sample element decoded, de-duplicated and normalised (`mfae data`)
BOOT_RUN_S = 1e-3          # seconds per (run, bootstrap resample) of `mfae convergence`
FIGURE_RUN_S = 0.05        # seconds per run a figure reads and draws
MF_POINT_S = 2e-5          # seconds per (model, output time, spectral group) of `mfae meanfield`
MB = 2.0**20


def _time_scales() -> tuple[float, float]:
    """(start-up, work) factors of this machine against the reference CPU (1, 1 uncalibrated)."""
    r = rates("cpu")
    return r.startup / CPU_RATES.startup, CPU_RATES.step_flops / r.step_flops


def _cost(startup: float, work: float, mem_mb: float) -> JobCost:
    s, w = _time_scales()
    return JobCost(startup * s + work * w, mem_mb)


def _source_rows(data: dict) -> tuple[int, int, int]:
    """(rows read, features, bytes per stored value) of a real-data source: IDX files are read whole
    (60000 + 10000 images of 784 8-bit pixels), digits are 1797 x 64, a user array its own shape (an
    MNIST-sized float64 matrix while it does not exist yet)."""
    src = data["source"]
    if src in REAL_SHAPES:  # 8-bit pixels, all rows read (IDX: the training and the test file)
        d, n, n_test = REAL_SHAPES[src]
        return n + n_test, d, 1
    shape = array_shape(data.get("path", ""))
    return (*shape, 8) if shape else (REAL_SHAPES["mnist"][1], REAL_SHAPES["mnist"][0], 8)


def _records_mb(config: dict, exp: str) -> float:
    """MB of the measurement records of an experiment's training outputs (as mfae.cost counts them)."""
    t = study.section(config, "train")
    total = 0.0
    for j in study.train_jobs(config):
        if j["experiment"] == exp:
            d = j["d"] or 784
            total += t["n_times"] * (min(j["N"], N_PROJECTIONS) + 2 * d + 3) * 8.0
    return total / MB


def data_cost(config: dict, exp: str, dkey: str) -> JobCost:
    """`mfae data` of one data file: Gaussian, its d x d eigenbasis; real data, DATA_COPIES float64
    copies of every row read, the covariance (n d^2) and its eigendecomposition (d^3)."""
    e = study.experiment(config, exp)
    if not study.is_real(e):
        d, _ = study.parse_dkey(dkey)
        return _cost(LIGHT_STARTUP_S, 30.0 * d**3 / CPU_RATES.host_flops, LIGHT_BASE_MB + 8 * d * d * 8 / MB)
    n, d, _ = _source_rows(e["data"])
    work = ELEMENT_S * n * d + (2.0 * n * d * d + 9.0 * d**3) / CPU_RATES.host_flops
    return _cost(LIGHT_STARTUP_S, work, LIGHT_BASE_MB + DATA_COPIES * n * d * 8 / MB)


def meanfield_cost(config: dict, exp: str, dkey: str) -> JobCost:
    """`mfae meanfield` of one data file (every model of the experiment): the ODE of its spectral groups
    (real data: up to d of them) and the data file read whole (its stored samples, twice)."""
    e = study.experiment(config, exp)
    models = len(e["activations"]) * len(e["lams"])
    n_times = study.section(config, "meanfield")["n_times"]
    if study.is_real(e):
        n, d, item = _source_rows(e["data"])
        groups, samples_mb = d, 2.0 * n * d * item / MB
    else:
        d, _ = study.parse_dkey(dkey)
        groups, samples_mb = len(e["data"].get("eigenvalues", [0, 0])), 0.0
    work = models * n_times * groups * MF_POINT_S
    return _cost(LIGHT_STARTUP_S, work, LIGHT_BASE_MB + samples_mb + 4 * d * d * 8 / MB)


def convergence_cost(config: dict, exp: str) -> JobCost:
    """`mfae convergence` of an experiment: every run's records read, n_boot bootstrap fits over them."""
    e = study.experiment(config, exp)
    runs = len(study.train_files(config, exp))
    work = BOOT_RUN_S * runs * max(1, e["n_boot"]) + FIGURE_RUN_S * runs
    return _cost(LIGHT_STARTUP_S, work, FIT_BASE_MB + 3.0 * _records_mb(config, exp))


def figure_cost(config: dict, stem: str) -> JobCost:
    """A figure job: the runs it reads (their records, three times) and, for F5, its data file's samples."""
    inputs = study.figure_inputs(config, stem)
    runs = len(inputs.get("train", [])) + len(inputs.get("convergence", [])) * 50
    mem = FIGURE_BASE_MB + 3.0 * sum(_records_mb(config, x) for x in study.figure_experiments(config, stem))
    for x in study.figure_experiments(config, stem) if study.FIGURES[stem].data else []:
        n, d, item = _source_rows(study.experiment(config, x)["data"])
        mem += 2.0 * n * d * item / MB
    return _cost(FIGURE_STARTUP_S, FIGURE_RUN_S * runs, mem)


def runs_table_cost(config: dict) -> JobCost:
    """`mfae summary` of every training output (their attributes and final values)."""
    runs = len(study.train_jobs(config))
    return _cost(LIGHT_STARTUP_S, 0.01 * runs, LIGHT_BASE_MB + 2.0 * sum(
        _records_mb(config, x) for x in study.experiments(config)))


def stage_cost(config: dict, stage: str, **where: str) -> JobCost:
    """The cost of one job of a non-training stage: data and meanfield (exp, dkey), convergence (exp),
    figure (stem), runs_table, fetch (downloading ~60 MB)."""
    if stage == "data":
        return data_cost(config, where["exp"], where["dkey"])
    if stage == "meanfield":
        return meanfield_cost(config, where["exp"], where["dkey"])
    if stage == "convergence":
        return convergence_cost(config, where["exp"])
    if stage == "figure":
        return figure_cost(config, where["stem"])
    if stage == "runs_table":
        return runs_table_cost(config)
    if stage == "fetch":
        return JobCost(120.0, LIGHT_BASE_MB)
    raise MfaeError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")


def stage_resources(config: dict, stage: str, attempt: int = 1, **where: str) -> dict[str, int]:
    """`runtime` (minutes) and `mem_mb` of a non-training job, as for training (mfae.jobsize): SAFETY x the
    time + the margin, capped at cluster.max_runtime_min; MEM_SAFETY x the memory; x the attempt."""
    c = stage_cost(config, stage, **where)
    return dict(runtime=time_limit(c.seconds, attempt, study.section(config, "cluster")["max_runtime_min"]),
                mem_mb=memory_request(c.mem_mb, attempt))
