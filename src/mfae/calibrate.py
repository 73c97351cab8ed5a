"""`mfae plan --calibrate`: this machine's rates for the cost model (mfae.traincost), measured once and stored.

The built-in rates of mfae.traincost (CPU_RATES, GPU_RATES) describe the development machine and an assumed
H100-class GPU. A job's whole time on another machine differs mostly in two ways: the start-up
(interpreter, imports, reading the data file, writing the output: slower file systems and CPUs) and
the speed of the SGD steps. `calibrate` times whole `mfae train` processes, exactly as the workflow
starts them (`python -m mfae train ... --threads 1`, three seeds of one N trained as one stack like
the workflow's batches), on three probe jobs:

  start-up   runs of 4 steps: the job's wall time is the start-up;
  overhead   narrow runs (N = 16, d = 48) of many steps: the per-step fixed cost (dispatch, activations);
  flops      wide runs (N = 2000, d = 96 on a CPU; N = 32768, d = 1024 on a GPU): the matmul rate.

The reference rates keep their structure; the fit scales the fixed-cost terms by one factor and the
throughput terms (steps, measurements, final modes) by another, so that the model reproduces the probe
jobs' measured whole-job times.

Where the rates live: a YAML file, one section per device (`cpu:`, `cuda:`), at $MFAE_RATES if set,
else $XDG_CONFIG_HOME/mfae/rates.yaml (~/.config/mfae/rates.yaml). `mfae plan` and the workflow's
resources (mfae.traincost.rates) read it when it exists; MFAE_RATES=none uses the built-in rates. On a
cluster, calibrate on a compute node (`srun ... mfae plan --calibrate --device cuda`) with a home
folder shared with the login node, where Snakemake reads the file.
"""

from __future__ import annotations

import dataclasses
import datetime
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import MfaeError, traincost
from .ratesfile import FITTED, reread

LR, BATCH, N_TEST, N_TIMES = 0.12, 8, 256, 2
RUNS = 3  # runs (seeds) per probe job, one stack: the workflow trains all seeds of an N together


# --- measuring ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Probe:
    name: str
    N: int
    d: int
    steps: int
    runs: int = RUNS  # seeds trained as one stack, as the workflow's batches train them


def probes(device: str, quick: bool = False) -> list[Probe]:
    """The probe jobs; the two of many steps do about 1-2 start-ups of work at the reference rates, so
    that the start-up's noise does not swamp them."""
    k = 4 if quick else 1
    if device == "cuda":
        return [Probe("start-up", 1, 48, 4), Probe("overhead", 16, 48, 400000 // k),
                Probe("flops", 32768, 1024, 20000 // k)]
    return [Probe("start-up", 1, 48, 4), Probe("overhead", 16, 48, 50000 // k), Probe("flops", 2000, 96, 3000 // k),
            Probe("bandwidth", 8000, 768, 240 // k, runs=1)]


def shape_of(p: Probe):
    return traincost.Shape(N=p.N, d=p.d, m=p.d, batch=BATCH, steps=p.steps, n_times=N_TIMES, n_test=N_TEST)


def _mfae(*args: str) -> list[str]:
    return [sys.executable, "-m", "mfae", *args]


def time_job(p: Probe, data: Path, out: Path, device: str) -> float:
    """Wall seconds of one whole `mfae train` process (start to exit) for the probe."""
    t_max = p.steps * LR / p.d
    outs = [str(out.with_name(f"{out.stem}{k}.nc")) for k in range(p.runs)]
    cmd = _mfae("train", "--data", str(data), "--N", ",".join([str(p.N)] * p.runs),
                "--seed", ",".join(str(k) for k in range(p.runs)), "--lr", str(LR), "--batch", str(BATCH),
                "--t-max", repr(t_max), "--n-times", str(N_TIMES), "--n-test", str(N_TEST), "--device", device,
                "--threads", "1", "--no-progress", "--checkpoint-seconds", "-1", "--out", *outs)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise MfaeError(f"calibration job failed ({' '.join(cmd[2:])}): {proc.stderr.strip()[-500:]}")
    return seconds


def fit(device: str, measured: dict[str, float], ps: list[Probe]):
    """Calibrated Rates: the reference model with its start-up set to the start-up probe's time, its
    fixed-cost terms scaled by k_o and its throughput terms by k_f, so that it gives the measured
    whole-job seconds of the overhead and flops probes (least squares on those two)."""
    ref = traincost.GPU_RATES if device == "cuda" else traincost.CPU_RATES
    by = {p.name: p for p in ps}

    def parts(p: Probe) -> tuple[float, float]:
        """(fixed-cost seconds, throughput seconds) of the probe's work under the reference rates: its
        runs' work, as mfae.jobsize.batch_cost counts a batch (the stack's runs one after the other)."""
        s = shape_of(p)
        fixed = p.steps * (ref.step_overhead + s.batch * s.N * ref.step_act)
        if device == "cuda":  # a GPU step costs max(floor, flops/rate, bytes/bandwidth): split at the max
            step = traincost.step_seconds(s, ref)
            fixed = p.steps * ref.step_overhead if step == ref.step_overhead else 0.0
        total = traincost.work_seconds(s, ref)
        return p.runs * fixed, p.runs * (total - fixed)

    startup = max(0.05, measured["start-up"] - sum(parts(by["start-up"])))
    (o1, f1), (o2, f2) = parts(by["overhead"]), parts(by["flops"])
    w1, w2 = (max(1e-3, measured[n] - startup) for n in ("overhead", "flops"))
    det = o1 * f2 - o2 * f1
    k_o = (w1 * f2 - w2 * f1) / det if det else 0.0
    k_f = (o1 * w2 - o2 * w1) / det if det else 0.0
    if not (k_o > 0 and k_f > 0):  # the two probes do not separate the terms here: one common factor
        k_o = k_f = (w1 + w2) / (o1 + f1 + o2 + f2)
    k_o, k_f = (min(100.0, max(0.01, k)) for k in (k_o, k_f))
    startup_ref_read = 8.0 * 48 * 48 / ref.read_rate
    rates = dataclasses.replace(
        ref, name=f"{device} (calibrated)", startup=startup - startup_ref_read,
        step_overhead=ref.step_overhead * k_o, step_act=max(ref.step_act * k_o, 1e-15),
        step_flops=ref.step_flops / k_f, measure_flops=ref.measure_flops / k_f,
        measure_act=max(ref.measure_act * k_f, 1e-15), bandwidth=ref.bandwidth / k_f,
        host_flops=ref.host_flops / k_f)
    factors = dict(k_overhead=k_o, k_throughput=k_f)
    if "bandwidth" in by:  # a Theta beyond the caches: the step time the flop rate does not explain
        p = by["bandwidth"]
        work = measured["bandwidth"] - traincost.startup_seconds(shape_of(p), rates)  # its own (larger) data file
        rates = dataclasses.replace(rates, bandwidth=_bandwidth(p, work, rates))
        factors["k_bandwidth"] = ref.bandwidth / rates.bandwidth
    return rates, factors


def _bandwidth(p: Probe, work: float, rates) -> float:
    """The memory bandwidth that makes the model give the probe's measured work (seconds after the
    start-up), the other rates fixed; +inf when the flop rate alone already explains it."""
    s = shape_of(p)
    flop_only = p.runs * traincost.work_seconds(s, dataclasses.replace(rates, bandwidth=float("inf")))
    extra = (work - flop_only) / (p.runs * p.steps)  # seconds per step the flops leave unexplained
    if extra <= 0:
        return float("inf")
    f = traincost.step_flops(s.batch, s.N, s.d, s.m) / rates.step_flops
    return traincost.step_bytes(s) / (f + extra)


def calibrate(device: str = "cpu", repeats: int = 3, quick: bool = False) -> dict[str, Any]:
    """Measure this machine (median of `repeats` runs of each probe job) and return the calibration
    entry of `device`: rates, what they were fitted to, and where/when."""
    if device not in traincost.DEVICES:
        raise MfaeError(f"device must be one of {', '.join(traincost.DEVICES)}, got {device!r}")
    ps = probes(device, quick)
    with tempfile.TemporaryDirectory(prefix="mfae-calibrate-") as tmp:
        data = {}
        for d in sorted({p.d for p in ps}):
            data[d] = Path(tmp) / f"d{d}.nc"
            proc = subprocess.run(_mfae("data", "gaussian", "--eigenvalues", "4,1,0.25", "--fractions", "1,1,1",
                                        "--d", str(d), "--rotate", "--out", str(data[d])), capture_output=True,
                                  text=True)
            if proc.returncode != 0:
                raise MfaeError(f"calibration data file failed: {proc.stderr.strip()[-500:]}")
        times: dict[str, list[float]] = {p.name: [] for p in ps}
        for _ in range(repeats):  # interleaved, so that a change of load on the machine hits every probe
            for p in ps:
                times[p.name].append(time_job(p, data[p.d], Path(tmp) / "out.nc", device))
        measured = {name: statistics.median(t) for name, t in times.items()}
    rates, factors = fit(device, measured, ps)
    return {
        "measured_on": dict(host=socket.gethostname(), date=datetime.datetime.now().isoformat(timespec="seconds"),
                            cpu=_cpu_model(), python=platform.python_version(), torch=_torch_version(),
                            repeats=repeats),
        "rates": {k: float(f"{getattr(rates, k):.4g}") for k in FITTED},
        "factors": {k: round(v, 4) for k, v in factors.items()},
        "probes": [dict(name=p.name, N=p.N, d=p.d, runs=p.runs, steps=p.steps, seconds=round(measured[p.name], 3),
                        model_seconds=round(_model_seconds(p, rates), 3)) for p in ps],
    }


def _model_seconds(p: Probe, rates) -> float:
    """The probe job under `rates`: one start-up plus each run's work."""
    s = shape_of(p)
    return traincost.startup_seconds(s, rates) + p.runs * traincost.work_seconds(s, rates)


def write(entry: dict[str, Any], device: str, path: Path) -> None:
    """Store `entry` as the `device` section of the calibration file (other devices' sections kept)."""
    import yaml

    from .io import write_text

    old = {}
    if path.exists():
        try:
            old = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            old = {}
    old[device] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Rates of the cost model (mfae.traincost.Rates) measured on this machine by `mfae plan --calibrate`.\n"
              "# Read by `mfae plan` and the workflow's job resources from $MFAE_RATES, else\n"
              "# $XDG_CONFIG_HOME/mfae/rates.yaml (~/.config/mfae/rates.yaml); MFAE_RATES=none ignores it.\n"
              "# probes: whole `mfae train` jobs timed (seconds) against the calibrated model (model_seconds).\n")
    write_text(header + yaml.safe_dump(old, sort_keys=False), path)
    reread()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "?"
