"""What a `mfae train` job costs in memory, estimated before anything is allocated.

`train_memory_mb` counts the arrays one run holds (see `mfae.train.prepare_run`, `mfae.sgd.Stepper`,
`mfae.measure.measure`) plus a fixed baseline for the interpreter, torch, xarray and netCDF4. It is
what `mfae train` checks against the memory available before it starts, and what planning tools
use to size jobs. tests/test_cost.py checks it against the measured peak RSS (VmHWM) of real
`mfae train` processes.
"""

from __future__ import annotations

MB = 2.0**20

# Peak RSS (VmHWM) of `mfae train` on a trivial problem (N=1, d=2, a few steps) on CPU, measured with
# /proc/self/status: Python + torch + numpy + xarray + netCDF4 + tqdm imported and the torch CPU
# kernels / thread pools initialised by the first matmuls. ~360 MB of it is the imports alone.
BASELINE_MB = 425.0

MEASURE_CHUNK = 1024  # mfae.measure.reconstruct's sample chunk
# torch's CPU matmul + elementwise activation of one measurement chunk peak at about four
# (chunk x N) float64 temporaries (measured: +31 KB of VmHWM per neuron, independent of n_test).
MEASURE_CHUNK_BUFFERS = 4
TEST_SET_BUFFERS = 6  # x_test + its generation / xhat / residual / projections, each n_test x d float64


def _itemsize(dtype: str) -> int:
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return 4 if dtype == "float32" else 8


def train_memory_mb(N: int, d: int, batch: int, *, n_test: int, n_train: int = 0, block_steps: int = 256,
                    dtype: str = "float32", n_projections: int = 1000, n_times: int = 50) -> float:
    """Estimated peak memory (MB = 2^20 bytes) of one `mfae train` process, baseline included.

    N neurons, input dimension d, mini-batch `batch`, `n_test` test samples (Gaussian data; for real
    data the test split's rows), `n_train` training rows held in memory (real data; 0 for Gaussian),
    `block_steps` steps of samples drawn at once, SGD weights in `dtype`. Terms (bytes):
      weights        theta N*d (dtype) + its float64 init and the float64 copies measure() makes (3 N*d*8)
      stepper        [S; sigma'*P], sigma'(U), ones: 4*batch*N (dtype)
      samples        the (block_steps, 2*batch, d) chunk buffer + 3 draw temporaries of block_steps*batch*d
      test set       TEST_SET_BUFFERS * n_test*d float64 (test set, xhat, residual, projections on V)
      measurement    MEASURE_CHUNK_BUFFERS * min(n_test, 1024)*N float64 temporaries
      eigenbasis     V and its float64 copy, d*d each, and the second-moment matrix
      training rows  n_train*d float64 as read + a dtype copy for sampling (float32 only)
      records        n_times * (min(N, n_projections) + 2d + 3) float64, held ~3 times (run, dataset, write)
      checkpoint     a CPU copy of theta and its serialisation, 2 N*d (dtype)
    """
    for name, v in dict(N=N, d=d, batch=batch, n_test=n_test, block_steps=block_steps, n_times=n_times).items():
        if int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if n_train < 0 or n_projections < 0:
        raise ValueError("n_train and n_projections must be >= 0")
    s = _itemsize(dtype)
    f64 = 8
    N, d, batch, n_test, n_train = int(N), int(d), int(batch), int(n_test), int(n_train)
    weights = N * d * s + 3 * N * d * f64
    stepper = 4 * batch * N * s
    samples = block_steps * 2 * batch * d * s + 3 * block_steps * batch * d * s
    test_set = TEST_SET_BUFFERS * n_test * d * f64
    measurement = MEASURE_CHUNK_BUFFERS * min(n_test, MEASURE_CHUNK) * N * f64
    eigenbasis = 3 * d * d * f64
    rows = n_train * d * (f64 + (s if s != f64 else 0))
    records = 3 * n_times * (min(N, n_projections) + 2 * d + 3) * f64
    checkpoint = 2 * N * d * s
    total = weights + stepper + samples + test_set + measurement + eigenbasis + rows + records + checkpoint
    return BASELINE_MB + total / MB
