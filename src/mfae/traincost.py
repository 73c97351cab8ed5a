"""The cost model of training: seconds and memory of one `mfae train` process from its shape (what
`mfae plan`, the packing of runs into batches and the workflow's job resources all build on).

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
bytes: five passes over Theta). The CPU constants are the reference rates of the development machine;
the GPU constants are documented assumptions (see GPU_RATES), not measurements. `mfae plan --calibrate`
(mfae.calibrate, the one calibrator) measures a machine's start-up and step rates once and stores them;
`rates()` then returns those instead of the built-in ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import MfaeError, defaults
from .cost import train_memory_mb
from .ratesfile import apply as apply_calibration

DEVICES = ("cpu", "cuda")
# the trainer's own settings that the cost depends on (not study settings: the workflow never sets them)
BLOCK_STEPS = defaults.RUN["block_steps"]      # steps of samples drawn at once
N_PROJECTIONS = defaults.RUN["n_projections"]  # neurons whose projection is recorded


@dataclass(frozen=True)
class Rates:
    """Throughputs of one kind of device for the cost model (seconds, flop/s, bytes/s)."""

    name: str
    step_flops: float       # float32 matmul rate of the SGD step (float64: STEP_F64_FACTOR slower)
    step_overhead: float    # seconds per step besides flops: CPU dispatch of ~7 torch calls; GPU launch floor
    step_act: float         # seconds per float32 activation (B*N per step); 0 on GPU (in the floor)
    measure_flops: float    # matmul rate of a measurement (CPU: float32 products; GPU: float64)
    measure_act: float      # seconds per activation in a measurement (n_test*N per measurement)
    bandwidth: float        # bytes/s of the passes over Theta a step makes (five): large N*d are memory-bound
    startup: float          # seconds: python + torch imports, data file, output; GPU: + CUDA init
    read_rate: float        # bytes/s reading the data file (netCDF, float64)
    host_flops: float       # float64 rate of the final eigendecomposition (always on the CPU)
    host_extra_mb: float = 0.0  # host memory beyond mfae.cost's count (GPU: CUDA context and libraries)
    gpu: bool = False           # GPU: a step costs the largest of its parts; CPU: they add up
    cache_bytes: float = 0.0    # Theta up to this size stays in the caches (CPU): its passes cost no bandwidth


# Fitted (least squares over timed steps, measurements and whole jobs) on the development machine (2-core AMD EPYC VM with
# AVX-512, torch 2.13 CPU/MKL, one thread per job as under Snakemake) on 2026-11-30 with the machine
# otherwise idle (load average 0.2). The constants are a least-squares fit, not hardware peaks: the
# step's fixed cost and activation term absorb part of the matmul time, so step_flops comes out above
# the 96.5 GF/s of a square sgemm. Checked against whole studies run with 2 jobs on the 2 cores
# (docs/performance.md "Cost model").
# Theta beyond ~8 MB (N x d = 2e6 float32) no longer stays in the caches and the skinny step products
# become memory-bound: 5 passes over Theta at `bandwidth` (d = 784, B = 16, one thread: 34 GF/s up to
# N = 2000, 24 GF/s at N = 8000, measured side by side). 7 GB/s: `mfae plan --calibrate` on the idle
# development machine, 2026-12-07 (its N = 8000, d = 768 probe).
CPU_RATES = Rates(name="cpu", step_flops=106e9, step_overhead=14.2e-6, step_act=1.41e-9, measure_flops=126e9,
                  measure_act=0.87e-9, bandwidth=7e9, startup=1.65, read_rate=300e6, host_flops=65e9,
                  cache_bytes=8e6)

# NOT measured (no GPU was available to this project): documented assumptions for an H100/H200-class
# GPU (A100: roughly 2x the times). float32 without TF32 at the skinny shapes of a step (one side is B):
# ~25 TFLOP/s effective; with CUDA graphs a step (7 kernels) costs at least ~15 us; memory ~3 TB/s
# effective (H200: 4.8 TB/s peak); float64 matmuls of a measurement ~30 TFLOP/s (FP64 tensor cores);
# start-up ~20 s (imports, CUDA context and cuBLAS handles, the graph capture's warm-up); the CUDA
# context and the CUDA libraries add ~1-2 GB to the host process (counted as 2000 MB on top of
# mfae.cost's arrays, which then sit in device memory: the host request is generous).
GPU_RATES = Rates(name="cuda", step_flops=25e12, step_overhead=15e-6, step_act=0.0, measure_flops=30e12,
                  measure_act=0.0, bandwidth=3e12, startup=20.0, read_rate=300e6, host_flops=20e9,
                  host_extra_mb=2000.0, gpu=True)

STEP_F64_FACTOR = 2.0      # float64 SGD weights: half the float32 matmul rate (CPU AVX-512 and H100 alike)


def rates(device: str, calibrated: bool = True) -> Rates:
    """The rates of `device`: this machine's, when `mfae plan --calibrate` stored them (mfae.calibrate:
    $MFAE_RATES, else ~/.config/mfae/rates.yaml), else the built-in reference (CPU_RATES, GPU_RATES)."""
    if device not in DEVICES:
        raise MfaeError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    ref = CPU_RATES if device == "cpu" else GPU_RATES
    return apply_calibration(ref, device) if calibrated else ref


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


def step_bytes(s: Shape) -> float:
    """Bytes a step moves: its five matrix products each pass over Theta (N x d)."""
    return 5.0 * s.N * s.d * (8 if s.dtype == "float64" else 4)


def step_seconds(s: Shape, r: Rates) -> float:
    """One SGD step: the matmuls at the flop rate or, once Theta outgrows the caches, at the memory
    bandwidth (whichever is slower); on a CPU plus the fixed dispatch cost and the activations."""
    f = step_flops(s.batch, s.N, s.d, s.m, s.n_train == 0)
    rate = r.step_flops / (STEP_F64_FACTOR if s.dtype == "float64" else 1.0)
    theta_bytes = step_bytes(s) / 5.0
    products = max(f / rate, step_bytes(s) / r.bandwidth if theta_bytes > r.cache_bytes else 0.0)
    if r.gpu:
        return max(r.step_overhead, products)
    return r.step_overhead + products + s.batch * s.N * r.step_act


def measure_seconds(s: Shape, r: Rates) -> float:
    f = measure_flops(s.N, s.d, s.m, s.n_test)
    t = f / r.measure_flops + s.n_test * s.N * r.measure_act
    if r.gpu:  # the n_test x N activations are written and read a few times
        t = max(t, 4.0 * s.n_test * s.N * 8 / r.bandwidth)
    return t


def startup_seconds(s: Shape, r: Rates) -> float:
    data_bytes = 8.0 * s.d * (s.m + s.n_train + s.n_test if s.n_train else s.m)
    return r.startup + data_bytes / r.read_rate


def est_seconds(s: Shape, r: Rates) -> float:
    """Estimated wall seconds of one `mfae train` job, start to end."""
    return (startup_seconds(s, r) + s.steps * step_seconds(s, r) + s.n_times * measure_seconds(s, r)
            + final_flops(s.N, s.d) / r.host_flops)


def work_seconds(s: Shape, r: Rates) -> float:
    """est_seconds without the start-up: what one more run adds to a process that is already running."""
    return est_seconds(s, r) - startup_seconds(s, r)


def memory_mb(s: Shape, r: Rates = CPU_RATES, runs: int = 1) -> float:
    """Peak memory (MB) of the job: mfae.cost.train_memory_mb (of `runs` runs of this shape trained as
    one stack), plus the device's host extra (CUDA)."""
    return r.host_extra_mb + train_memory_mb(s.N, s.d, s.batch, n_test=s.n_test, n_train=s.n_train,
                                             block_steps=BLOCK_STEPS, dtype=s.dtype, n_projections=N_PROJECTIONS,
                                             n_times=s.n_times, runs=runs)
