"""What a `mfae train` job costs in memory, estimated before anything is allocated.

`train_memory_mb` counts the arrays one run holds (see `mfae.runsetup.prepare_run`, `mfae.sgd.Stepper`,
`mfae.measure.measure`) plus a fixed baseline for the interpreter, torch, xarray and netCDF4. It is
what `mfae train` checks against the memory available before it starts, and what planning tools
use to size jobs. tests/test_cost.py checks it against the measured peak RSS (VmHWM) of real
`mfae train` processes.
"""

from __future__ import annotations

from . import defaults

MB = 2.0**20

# Peak RSS (VmHWM, /proc/self/status) of `mfae train` on a trivial problem (N=1, d=50, a few steps, CPU,
# torch 2.x): Python + torch + numpy + xarray + netCDF4 + tqdm imported and torch's CPU kernels and
# thread pools initialised by the first matmuls. Most of it is the imports.
BASELINE_MB = 360.0

MEASURE_CHUNK = 256  # mfae.measure.Measurer: one (chunk x N) activation buffer in the product precision
# the float64 test set x, its float64 projections x V, the float32 copy for the products (CPU) and,
# while a Gaussian test set is drawn, its generation temporaries: about 3.5 n_test x d float64 at peak
TEST_SET_BUFFERS = 3.5
WEIGHT_COPIES_F64 = 4  # float64 copies of theta: the seeded init, measure()'s th64 and th64 V, the final modes


def _itemsize(dtype: str) -> int:
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return 4 if dtype == "float32" else 8


def train_memory_mb(N: int, d: int, batch: int, *, n_test: int, n_train: int = 0,
                    block_steps: int = defaults.RUN["block_steps"], dtype: str = "float32",
                    n_projections: int = defaults.RUN["n_projections"],
                    n_times: int = defaults.SECTIONS["train"]["n_times"], runs: int = 1) -> float:
    """Estimated peak memory (MB = 2^20 bytes) of one `mfae train` process, baseline included.

    N neurons, input dimension d, mini-batch `batch`, `n_test` test samples (Gaussian data; for real
    data the test split's rows), `n_train` training rows held in memory (real data; 0 for Gaussian),
    `block_steps` steps of samples drawn at once, SGD weights in `dtype`. Terms (bytes):
      weights        theta N*d (dtype) + WEIGHT_COPIES_F64 float64 copies N*d*8 (init, measurements, modes)
      stepper        [S; sigma'*P], sigma'(U), ones: 4*batch*N (dtype)
      samples        the (block_steps, 2*batch, d) chunk buffer + 3 draw temporaries of block_steps*batch*d
      test set       TEST_SET_BUFFERS * n_test*d float64 (test set, its projections, product copy)
      measurement    the min(n_test, 256) x N activation buffer (dtype: the CPU product precision)
      eigenbasis     V and its float64 copy, d*d each, and the second-moment matrix
      training rows  2 n_train*d float64: the float64 rows as read and the transient second copy that
                     reading a compressed variable makes (more than the float32 copy for sampling made after
                     it; measured by tests/test_cost.py); 8-bit image files hold uint8 codes decoded straight
                     into the dtype, so this is an upper bound there
      records        n_times * (min(N, n_projections) + 2d + 3) float64, held ~3 times (run, dataset, write)
      checkpoint     a CPU copy of theta and its serialisation, 2 N*d (dtype)
    With `runs` = R > 1, a stack of R runs of this N trained together (`mfae.train.train_batch`):
    weights, stepper, samples, measurement, records and checkpoint are per run (x R); the test set,
    eigenbasis and training rows are shared.
    """
    for name, v in dict(N=N, d=d, batch=batch, n_test=n_test, block_steps=block_steps, n_times=n_times).items():
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if n_train < 0 or n_projections < 0:
        raise ValueError("n_train and n_projections must be >= 0")
    s = _itemsize(dtype)
    f64 = 8
    N, d, batch, n_test, n_train = int(N), int(d), int(batch), int(n_test), int(n_train)
    weights = N * d * s + WEIGHT_COPIES_F64 * N * d * f64
    stepper = 4 * batch * N * s
    samples = block_steps * 2 * batch * d * s + 3 * block_steps * batch * d * s
    test_set = TEST_SET_BUFFERS * n_test * d * f64
    measurement = min(n_test, MEASURE_CHUNK) * N * s
    eigenbasis = 3 * d * d * f64
    rows = n_train * d * max(2 * f64, f64 + s)  # the read's peak (2 float64), or float64 + the dtype copy
    records = 3 * n_times * (min(N, n_projections) + 2 * d + 3) * f64
    checkpoint = 2 * N * d * s
    if int(runs) < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    per_run = weights + stepper + samples + measurement + records + checkpoint
    total = int(runs) * per_run + test_set + eigenbasis + rows
    return BASELINE_MB + total / MB


def available_memory_mb() -> float:
    """Memory this process can still use (MB): /proc/meminfo MemAvailable, lowered to the cgroup's
    limit minus its usage when one is set (a batch job's memory limit). +inf where neither is known."""
    avail = float("inf")
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) / 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as fh:
                used = int(fh.read().strip())
            avail = min(avail, (int(limit) - used) / MB)
    except (OSError, ValueError):
        pass
    return avail


def device_memory_mb(device) -> float:
    """Free memory (MB) of a CUDA device (torch.cuda.mem_get_info); +inf for the CPU."""
    if getattr(device, "type", str(device)) != "cuda":
        return float("inf")
    import torch

    free, _total = torch.cuda.mem_get_info(device)
    return free / MB


def check_fits(need_mb: float, what: str, avail_mb: float | None = None, where: str = "available",
               advice: str = "use smaller sizes or a bigger machine") -> None:
    """Refuse (MfaeError, one line) a job needing `need_mb` MB more than `avail_mb` (default: what this
    machine has available now, `available_memory_mb`)."""
    from . import MfaeError

    avail = available_memory_mb() if avail_mb is None else avail_mb
    if need_mb > avail:
        raise MfaeError(f"{what} needs about {need_mb:,.0f} MB but only {avail:,.0f} MB are {where}; {advice}")
