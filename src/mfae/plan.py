"""What a study costs before it runs: steps, flops, seconds, memory and a SLURM time limit per
training job (`mfae plan`, and the `train` rule's `runtime`/`mem_mb` resources).

The time of one `mfae train` job (src/mfae/train.py) is modelled from its operation count:

- `steps = ceil(t_max * d / lr)` SGD steps (eps = lr/d, docs/theory.md §2), each 5 matmuls of
  2*B*N*d flops (`10*B*N*d`, docs/performance.md "The step") plus drawing B Gaussian samples
  (`2*B*d*m` flops for the rotation by V; real data: a row gather), at float32 (or float64) rates;
- `n_times` measurements (docs/theory.md §4, src/mfae/measure.py: `Measurer`, products in float32 on
  the CPU for float32 weights and float64 otherwise, sums in float64) on the n_test test samples (train.n_test for Gaussian data, the test split for real data): the reconstruction
  `4*n_test*N*d`, the projections on V `4*n_test*d*m + 2*N*d*m`, and one activation per (test
  sample, neuron);
- the final second-moment modes `2*N*d^2 + 9*d^3` (float64, on the CPU);
- a fixed start-up (imports, reading the data file, CUDA initialisation, writing the output).

A step costs `overhead + flops/rate + B*N*t_act` on the CPU (t_act: one float32 activation) and
`max(floor, flops/rate, bytes/bandwidth)` on a GPU (floor: the per-step launch cost with CUDA graphs;
bytes: five passes over Theta). The CPU constants were calibrated on the development machine with
bench/bench_plan.py; the GPU constants are documented assumptions (see GPU_RATES), not measurements.
`mfae plan --calibrate` (mfae.calibrate) measures another machine's start-up and step rates once and
stores them; `rates()` then returns those instead of the built-in ones.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from . import MfaeError
from . import study
from .constants import REAL_SHAPES, split_sizes
from .runconfig import n_steps  # noqa: F401  (plan.n_steps: the trainer's step count)

PLAN_COLUMNS = ("experiment", "activation", "lam", "d", "N", "seed", "steps", "flops", "est_seconds", "mem_mb",
                "runtime_min")
DEVICES = ("cpu", "cuda")

SAFETY = 3.0               # runtime limit = SAFETY * estimate + MARGIN_MIN minutes (rounded up) ...
MARGIN_MIN = 3.0
MIN_RUNTIME_MIN = 5        # ... and at least this; each retry (attempt) multiplies it
MEM_SAFETY = 1.5           # mem_mb resource = MEM_SAFETY * the memory estimate, rounded up to 100 MB ...
MIN_MEM_MB = 1000          # ... and at least this
BLOCK_STEPS = 256          # mfae train --block-steps
N_PROJECTIONS = 1000       # TrainConfig.n_projections: neurons whose projection is recorded


@dataclass(frozen=True)
class Rates:
    """Throughputs of one kind of device for the cost model (seconds, flop/s, bytes/s)."""

    name: str
    step_flops: float       # float32 matmul rate of the SGD step (float64: STEP_F64_FACTOR slower)
    step_overhead: float    # seconds per step besides flops: CPU dispatch of ~7 torch calls; GPU launch floor
    step_act: float         # seconds per float32 activation (B*N per step); 0 on GPU (in the floor)
    measure_flops: float    # matmul rate of a measurement (CPU: float32 products; GPU: float64)
    measure_act: float      # seconds per activation in a measurement (n_test*N per measurement)
    bandwidth: float        # bytes/s (GPU: steps are also bound by five passes over Theta); inf on CPU
    startup: float          # seconds: python + torch imports, data file, output; GPU: + CUDA init
    read_rate: float        # bytes/s reading the data file (netCDF, float64)
    host_flops: float       # float64 rate of the final eigendecomposition (always on the CPU)
    host_extra_mb: float = 0.0  # host memory beyond mfae.cost's count (GPU: CUDA context and libraries)


# Calibrated with `python bench/bench_plan.py` on the development machine (2-core AMD EPYC VM with
# AVX-512, torch 2.13 CPU/MKL, one thread per job as under Snakemake) on 2026-11-30 with the machine
# otherwise idle (load average 0.2). The constants are a least-squares fit, not hardware peaks: the
# step's fixed cost and activation term absorb part of the matmul time, so step_flops comes out above
# the 96.5 GF/s of a square sgemm. Checked against whole studies run with 2 jobs on the 2 cores
# (docs/performance.md "Cost model").
CPU_RATES = Rates(name="cpu", step_flops=106e9, step_overhead=14.2e-6, step_act=1.41e-9, measure_flops=126e9,
                  measure_act=0.87e-9, bandwidth=math.inf, startup=1.65, read_rate=300e6, host_flops=65e9)

# NOT measured (no GPU was available to this project): documented assumptions for an H100/H200-class
# GPU (A100: roughly 2x the times). float32 without TF32 at the skinny shapes of a step (one side is B):
# ~25 TFLOP/s effective; with CUDA graphs a step (7 kernels) costs at least ~15 us; memory ~3 TB/s
# effective (H200: 4.8 TB/s peak); float64 matmuls of a measurement ~30 TFLOP/s (FP64 tensor cores);
# start-up ~20 s (imports, CUDA context and cuBLAS handles, the graph capture's warm-up); the CUDA
# context and the CUDA libraries add ~1-2 GB to the host process (counted as 2000 MB on top of
# mfae.cost's arrays, which then sit in device memory: the host request is generous).
GPU_RATES = Rates(name="cuda", step_flops=25e12, step_overhead=15e-6, step_act=0.0, measure_flops=30e12,
                  measure_act=0.0, bandwidth=3e12, startup=20.0, read_rate=300e6, host_flops=20e9,
                  host_extra_mb=2000.0)

STEP_F64_FACTOR = 2.0      # float64 SGD weights: half the float32 matmul rate (CPU AVX-512 and H100 alike)


def rates(device: str, calibrated: bool = True) -> Rates:
    """The rates of `device`: this machine's, when `mfae plan --calibrate` stored them (mfae.calibrate:
    $MFAE_RATES, else ~/.config/mfae/rates.yaml), else the built-in reference (CPU_RATES, GPU_RATES)."""
    if device not in DEVICES:
        raise MfaeError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    ref = CPU_RATES if device == "cpu" else GPU_RATES
    if not calibrated:
        return ref
    from .ratesfile import apply

    return apply(ref, device)


# --- the operation count -----------------------------------------------------------------------

def step_flops(B: int, N: int, d: int, m: int, gaussian: bool = True) -> float:
    """Flops of one SGD step: 5 matmuls of 2*B*N*d, plus the Gaussian samples' rotation 2*B*m*d."""
    return 10.0 * B * N * d + (2.0 * B * m * d if gaussian else 0.0)


def measure_flops(N: int, d: int, m: int, n_test: int) -> float:
    """Flops of one measurement (mfae.measure.measure plus the recorded projections): the reconstruction
    xhat = sigma(x Theta^T) Theta / N (4*n_test*N*d), x V and xhat V (4*n_test*d*m), Theta V (2*N*d*m)."""
    return 4.0 * n_test * N * d + 4.0 * n_test * d * m + 2.0 * N * d * m + 2.0 * min(N, N_PROJECTIONS) * d


def final_flops(N: int, d: int) -> float:
    """The learned second moment Theta^T Theta / N (2*N*d^2) and its eigendecomposition (~9 d^3)."""
    return 2.0 * N * d * d + 9.0 * d**3


@dataclass(frozen=True)
class Shape:
    """What the cost of one training job depends on."""

    N: int
    d: int
    m: int              # eigenvectors kept in the data file (d, or the rank of low-rank data)
    batch: int
    steps: int
    n_times: int
    n_test: int
    n_train: int = 0    # real data: training rows held in memory (0: Gaussian samples)
    dtype: str = "float32"


def flops(s: Shape) -> float:
    """All flops of a job: its steps, its measurements and the final second-moment modes."""
    return (s.steps * step_flops(s.batch, s.N, s.d, s.m, gaussian=s.n_train == 0)
            + s.n_times * measure_flops(s.N, s.d, s.m, s.n_test) + final_flops(s.N, s.d))


def step_seconds(s: Shape, r: Rates) -> float:
    f = step_flops(s.batch, s.N, s.d, s.m, s.n_train == 0)
    rate = r.step_flops / (STEP_F64_FACTOR if s.dtype == "float64" else 1.0)
    if math.isinf(r.bandwidth):  # CPU: sequential costs add up
        return r.step_overhead + f / rate + s.batch * s.N * r.step_act
    item = 8 if s.dtype == "float64" else 4
    return max(r.step_overhead, f / rate, 5.0 * s.N * s.d * item / r.bandwidth)


def measure_seconds(s: Shape, r: Rates) -> float:
    f = measure_flops(s.N, s.d, s.m, s.n_test)
    t = f / r.measure_flops + s.n_test * s.N * r.measure_act
    if not math.isinf(r.bandwidth):  # GPU: the n_test x N activations are written and read a few times
        t = max(t, 4.0 * s.n_test * s.N * 8 / r.bandwidth)
    return t


def startup_seconds(s: Shape, r: Rates) -> float:
    data_bytes = 8.0 * s.d * (s.m + s.n_train + s.n_test if s.n_train else s.m)
    return r.startup + data_bytes / r.read_rate


def est_seconds(s: Shape, r: Rates) -> float:
    """Estimated wall seconds of one `mfae train` job, start to end."""
    return (startup_seconds(s, r) + s.steps * step_seconds(s, r) + s.n_times * measure_seconds(s, r)
            + final_flops(s.N, s.d) / r.host_flops)


def runtime_minutes(seconds: float, attempt: int = 1) -> int:
    """The SLURM time limit for a job estimated at `seconds`: SAFETY x the estimate + MARGIN_MIN
    minutes, rounded up, at least MIN_RUNTIME_MIN; a retry (attempt k) gets k times as long."""
    return attempt * max(MIN_RUNTIME_MIN, math.ceil(SAFETY * seconds / 60.0 + MARGIN_MIN))


def memory_resource_mb(mem_mb: float, attempt: int = 1) -> int:
    """The SLURM memory request (--mem) for a job estimated at `mem_mb`: MEM_SAFETY x the estimate,
    rounded up to 100 MB, at least MIN_MEM_MB; a retry (attempt k) gets k times as much."""
    return attempt * max(MIN_MEM_MB, 100 * math.ceil(MEM_SAFETY * mem_mb / 100.0))


def memory_mb(s: Shape, r: Rates = CPU_RATES, runs: int = 1) -> float:
    """Peak memory (MB) of the job: mfae.cost.train_memory_mb (of `runs` runs of this shape trained as
    one stack), plus the device's host extra (CUDA)."""
    from .cost import train_memory_mb

    return r.host_extra_mb + train_memory_mb(s.N, s.d, s.batch, n_test=s.n_test, n_train=s.n_train,
                                             block_steps=BLOCK_STEPS, dtype=s.dtype, n_projections=N_PROJECTIONS,
                                             n_times=s.n_times, runs=runs)


# --- jobs of a study ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DataSize:
    d: int
    m: int
    n_train: int  # 0 for Gaussian data (samples are drawn)
    n_test: int | None  # real data: the test split; None for Gaussian data (train.n_test samples)


def data_file_size(path: str | Path) -> DataSize | None:
    """Sizes read from an existing data file of `mfae data` (only its header), or None."""
    path = Path(path)
    if not path.exists():
        return None
    return _data_file_size(path.resolve(), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _data_file_size(path: Path, mtime_ns: int) -> DataSize:
    """One read per file version: the workflow asks once per training job."""
    import xarray as xr

    with xr.open_dataset(path) as ds:
        d, m = (int(n) for n in ds["eigenvector"].shape)
        n_train = int(ds.sizes.get("sample", 0)) if "x_train" in ds else 0
        n_test = int(ds.sizes.get("test_sample", 0)) if "x_test" in ds else None
    return DataSize(d, m, n_train, n_test)


def real_data_size(data: dict) -> DataSize | None:
    """Sizes of a real-data source before its data file exists: known datasets, or the shape of a
    user array (study.real_dimension); None when the width cannot be known yet."""
    src = data["source"]
    if src in REAL_SHAPES:  # known datasets (constants.REAL_SHAPES; n_test 0: split by test_fraction)
        d, n, n_test = REAL_SHAPES[src]
    else:
        d = study.real_dimension(data)
        n = _array_rows(data.get("path", ""))
        if d is None or n is None:
            return None
        n_test = 0
    max_samples = data.get("max_samples") or 0
    if max_samples:
        n = min(n, max_samples)
    if not n_test:
        n, n_test = split_sizes(n, data.get("test_fraction", 0.2))
    if data.get("max_test"):  # mfae data --max-test: at most this many test rows
        n_test = min(n_test, data["max_test"])
    return DataSize(d, d, n, n_test)


def _array_rows(path: str) -> int | None:
    p = Path(path)
    try:
        if p.suffix == ".npy":
            import numpy as np

            shape = np.load(p, mmap_mode="r").shape
            return int(shape[0]) if len(shape) == 2 else None
        with open(p) as f:
            return sum(1 for line in f if line.strip())  # a header line counts too: an upper bound
    except (OSError, ValueError):
        return None


def data_size(config: dict, exp: str, dkey: str, data_file: str | Path | None = None) -> DataSize | None:
    """Sizes of one data file of an experiment. Gaussian: from the config (d from the key, all d
    eigenvectors; low-rank: its rank of them) with train.n_test test samples. Real data: from the
    data file when it exists, else the known sizes of the source; at most data.max_test test rows."""
    e = study.experiment(config, exp)
    if study.is_real(e):
        size = (data_file_size(data_file) if data_file is not None else None) or real_data_size(e["data"])
        if size is None:
            return None
    else:  # exact from the config: the file would only confirm it
        d, rank = study.parse_dkey(dkey)
        m = (rank or e["data"]["rank"]) if e["data"]["source"] == "lowrank" else d
        size = DataSize(d, m, 0, None)
    if size.n_test is None:
        return DataSize(size.d, size.m, size.n_train, study.section(config, "train")["n_test"])
    if e["data"].get("max_test"):
        return DataSize(size.d, size.m, size.n_train, min(size.n_test, e["data"]["max_test"]))
    return size


def job_shape(config: dict, exp: str, dkey: str, N: int, data_file: str | Path | None = None) -> Shape | None:
    """The cost shape of the training job (exp, data key, N), or None when its data size is unknown."""
    size = data_size(config, exp, dkey, data_file)
    if size is None:
        return None
    e, t = study.experiment(config, exp), study.section(config, "train")
    return Shape(N=int(N), d=size.d, m=size.m, batch=t["batch"], steps=n_steps(e["t_max"], size.d, e["lr"]),
                 n_times=t["n_times"], n_test=size.n_test, n_train=size.n_train, dtype=t["dtype"])


def job_shape_fallback(config: dict, exp: str, N: int) -> Shape:
    """The shape planned for a job whose data width is unknown (a user array that does not exist yet):
    that of an MNIST-sized file (784 features, 60000 rows split by data.test_fraction)."""
    e, t = study.experiment(config, exp), study.section(config, "train")
    d, n, _ = REAL_SHAPES["mnist"]
    n_train, n_test = split_sizes(n, e["data"].get("test_fraction", 0.2))
    return Shape(N=int(N), d=d, m=d, batch=t["batch"], steps=n_steps(e["t_max"], d, e["lr"]),
                 n_times=t["n_times"], n_test=n_test, n_train=n_train, dtype=t["dtype"])


def plan_device(config: dict, *, gpu: bool) -> str:
    """The device whose rates estimate the training jobs: `train.plan_device` when cpu or cuda; for
    auto, `train.device` when cpu or cuda; for device auto, cuda when the training jobs are given a
    GPU (`gpu`: profiles/slurm's set-resources train: gpu: 1) and cpu otherwise (a local run)."""
    t = study.section(config, "train")
    for key in ("plan_device", "device"):
        if t.get(key) in DEVICES:
            return t[key]
    return "cuda" if gpu else "cpu"


def plan(config: dict, device: str, data_files: bool = True) -> list[dict[str, Any]]:
    """One row per training job (study.train_jobs order) with PLAN_COLUMNS; the estimates are None
    for a job whose data width is unknown (a user array that does not exist yet). With data_files,
    existing data files of the study give exact sizes."""
    r = rates(device)
    out, shapes = [], {}
    for j in study.train_jobs(config):
        key = (j["experiment"], j["data"], j["N"])
        if key not in shapes:
            f = Path(j["path"]).parents[2] / "data" / f"{j['data']}.nc" if data_files else None
            shapes[key] = job_shape(config, j["experiment"], j["data"], j["N"], f)
        s = shapes[key]
        row = {k: j[k] for k in PLAN_COLUMNS[:6]}
        if s is None:
            row.update(steps=None, flops=None, est_seconds=None, mem_mb=None, runtime_min=None)
        else:
            sec = est_seconds(s, r)
            row.update(d=s.d, steps=s.steps, flops=float(f"{flops(s):.4g}"), est_seconds=round(sec, 2),
                       mem_mb=round(memory_mb(s, r), 1), runtime_min=runtime_minutes(sec))
        out.append(row)
    return out


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Sums over a plan: jobs, jobs without an estimate, estimated hours, requested hours, the longest job."""
    known = [r for r in rows if r["est_seconds"] is not None]
    longest = max(known, key=lambda r: r["est_seconds"], default=None)
    return dict(jobs=len(rows), unknown=len(rows) - len(known),
                hours=sum(r["est_seconds"] for r in known) / 3600.0,
                requested_hours=sum(r["runtime_min"] for r in known) / 60.0,
                longest=longest, max_mem_mb=max((r["mem_mb"] for r in known), default=0.0))


# --- the workflow's resources ------------------------------------------------------------------

def train_resources(config: dict, exp: str, dkey: str, N: int | str, device: str, attempt: int = 1,
                    data_file: str | Path | None = None) -> dict[str, int]:
    """`runtime` (minutes) and `mem_mb` of the `train` rule's job (exp, data key, N); when the data
    width is not known yet, the largest known real-data width (784) stands in."""
    s = job_shape(config, exp, dkey, int(N), data_file) or job_shape_fallback(config, exp, int(N))
    r = rates(device)
    return dict(runtime=runtime_minutes(est_seconds(s, r), attempt),
                mem_mb=memory_resource_mb(memory_mb(s, r), attempt))


# --- the other stages' jobs: data, mean field, convergence, figures, runs table, fetch ------------------
# Each is one CPU process dominated by its imports and, for real data, by n x d arrays. Memory: a
# baseline (peak RSS of the stage's imports, measured) plus its arrays; time: a start-up plus its work,
# both scaled like the training jobs' CPU start-up and throughput when this machine is calibrated.
# tests/test_resources.py runs each stage's largest jobs (default study, Fashion-MNIST at d = 784) and
# checks that the request covers their measured peak.

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


@dataclass(frozen=True)
class StageCost:
    """Estimated seconds and peak memory (MB) of one non-training job."""

    seconds: float
    mem_mb: float


def _time_scales() -> tuple[float, float]:
    """(start-up, work) factors of this machine against the reference CPU (1, 1 uncalibrated)."""
    r = rates("cpu")
    return r.startup / CPU_RATES.startup, CPU_RATES.step_flops / r.step_flops


def _cost(startup: float, work: float, mem_mb: float) -> StageCost:
    s, w = _time_scales()
    return StageCost(startup * s + work * w, mem_mb)


def _source_rows(data: dict) -> tuple[int, int, int]:
    """(rows read, features, bytes per stored value) of a real-data source: IDX files are read whole
    (60000 + 10000 images of 784 8-bit pixels), digits are 1797 x 64, a user array its own shape (an
    MNIST-sized float64 matrix while it does not exist yet)."""
    src = data["source"]
    if src in REAL_SHAPES:  # 8-bit pixels, all rows read (IDX: the training and the test file)
        d, n, n_test = REAL_SHAPES[src]
        return n + n_test, d, 1
    d, n = study.real_dimension(data), _array_rows(data.get("path", ""))
    return (n, d, 8) if d and n else (REAL_SHAPES["mnist"][1], REAL_SHAPES["mnist"][0], 8)


def _records_mb(config: dict, exp: str) -> float:
    """MB of the measurement records of an experiment's training outputs (as mfae.cost counts them)."""
    t = study.section(config, "train")
    total = 0.0
    for j in study.train_jobs(config):
        if j["experiment"] == exp:
            d = j["d"] or 784
            total += t["n_times"] * (min(j["N"], N_PROJECTIONS) + 2 * d + 3) * 8.0
    return total / MB


def data_cost(config: dict, exp: str, dkey: str) -> StageCost:
    """`mfae data` of one data file: Gaussian, its d x d eigenbasis; real data, DATA_COPIES float64
    copies of every row read, the covariance (n d^2) and its eigendecomposition (d^3)."""
    e = study.experiment(config, exp)
    if not study.is_real(e):
        d, _ = study.parse_dkey(dkey)
        return _cost(LIGHT_STARTUP_S, 30.0 * d**3 / CPU_RATES.host_flops, LIGHT_BASE_MB + 8 * d * d * 8 / MB)
    n, d, _ = _source_rows(e["data"])
    work = ELEMENT_S * n * d + (2.0 * n * d * d + 9.0 * d**3) / CPU_RATES.host_flops
    return _cost(LIGHT_STARTUP_S, work, LIGHT_BASE_MB + DATA_COPIES * n * d * 8 / MB)


def meanfield_cost(config: dict, exp: str, dkey: str) -> StageCost:
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


def convergence_cost(config: dict, exp: str) -> StageCost:
    """`mfae convergence` of an experiment: every run's records read, n_boot bootstrap fits over them."""
    e = study.experiment(config, exp)
    runs = len(study.train_files(config, exp))
    work = BOOT_RUN_S * runs * max(1, e["n_boot"]) + FIGURE_RUN_S * runs
    return _cost(LIGHT_STARTUP_S, work, FIT_BASE_MB + 3.0 * _records_mb(config, exp))


def figure_cost(config: dict, stem: str) -> StageCost:
    """A figure job: the runs it reads (their records, three times) and, for F5, its data file's samples."""
    inputs = study.figure_inputs(config, stem)
    runs = len(inputs.get("train", [])) + len(inputs.get("convergence", [])) * 50
    mem = FIGURE_BASE_MB + 3.0 * sum(_records_mb(config, x) for x in study.figure_experiments(config, stem))
    for x in study.figure_experiments(config, stem) if study.FIGURES[stem].data else []:
        n, d, item = _source_rows(study.experiment(config, x)["data"])
        mem += 2.0 * n * d * item / MB
    return _cost(FIGURE_STARTUP_S, FIGURE_RUN_S * runs, mem)


def runs_table_cost(config: dict) -> StageCost:
    """`mfae summary` of every training output (their attributes and final values)."""
    runs = len(study.train_jobs(config))
    return _cost(LIGHT_STARTUP_S, 0.01 * runs, LIGHT_BASE_MB + 2.0 * sum(
        _records_mb(config, x) for x in study.experiments(config)))


def stage_cost(config: dict, stage: str, **where: str) -> StageCost:
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
        return StageCost(120.0, LIGHT_BASE_MB)
    raise MfaeError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")


def stage_resources(config: dict, stage: str, attempt: int = 1, **where: str) -> dict[str, int]:
    """`runtime` (minutes) and `mem_mb` of a non-training job, as for training: SAFETY x the time + a
    margin (at least MIN_RUNTIME_MIN), MEM_SAFETY x the memory (at least MIN_MEM_MB), x the attempt."""
    c = stage_cost(config, stage, **where)
    return dict(runtime=runtime_minutes(c.seconds, attempt), mem_mb=memory_resource_mb(c.mem_mb, attempt))
