"""What the benchmark scripts share: timing, Snakemake's benchmark files, exporting a git revision, and the
plain autograd SGD loop that mfae's trainer is compared with.

Only the standard library is imported at module level, so that the standalone "plain script" of
bench_jobs.py can use `autograd_sgd` without importing mfae (torch is imported inside the functions).
"""

from __future__ import annotations

import csv
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping

ROOT = Path(__file__).resolve().parents[1]

# The default baseline revision of bench_jobs.py --baseline and bench_study.py --baseline: the state of
# the code before the whole-job work (docs/performance.md "Whole jobs" compares against it). Any other
# revision can be given on the command line.
DEFAULT_BASELINE = "dd01a14"
# The default baseline of bench_batch.py and bench_jobs.py --batches: one process per SGD run, before
# many runs per process (docs/performance.md "Many runs per process" compares against it).
BATCH_BASELINE = "e84be0a"


# --- timing -----------------------------------------------------------------------------------------------

def seconds_per_call(fn: Callable[[], object], min_time: float = 0.0, sync: Callable[[], None] | None = None,
                     calls_per_step: int = 1) -> float:
    """Seconds per call (divided by `calls_per_step`, e.g. steps per call) of calling `fn` until at least
    `min_time` has passed (at least once); `sync` (e.g. torch.cuda.synchronize) after each call."""
    sync = sync or (lambda: None)
    sync()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        sync()
        elapsed = time.perf_counter() - t0
        if elapsed >= min_time:
            return elapsed / (n * calls_per_step)


def median_seconds(fns: Mapping[str, Callable[[], object]], repeats: int, min_time: float = 0.0,
                   sync: Callable[[], None] | None = None, calls_per_step: Mapping[str, int] | None = None,
                   warm_seconds: float = 0.0) -> dict[str, float]:
    """Median over `repeats` repeats of `seconds_per_call` for each callable, the callables interleaved
    repeat by repeat (a drifting machine load hits all alike); each first warmed up for `warm_seconds`
    (at least one call) when warm_seconds > 0."""
    if warm_seconds > 0:
        for fn in fns.values():
            seconds_per_call(fn, warm_seconds, sync)
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            out[k].append(seconds_per_call(fn, min_time, sync, (calls_per_step or {}).get(k, 1)))
    return {k: statistics.median(v) for k, v in out.items()}


# --- Snakemake's benchmark files --------------------------------------------------------------------------

def study_config(configfiles: list[Path]) -> dict:
    """The config of a study run from the current folder with `snakemake --configfile FILES`: the files
    merged in order on top of this folder's config.yaml (the Snakefile's `configfile:`), sized as
    `mfae plan` sizes it (smoke settings applied). Imports mfae (not at module level: see above)."""
    from mfae import study
    from mfae.config import load_config

    base = [] if configfiles and configfiles[0].resolve() == Path("config.yaml").resolve() else [Path("config.yaml")]
    for f in base + list(configfiles):
        if not f.is_file():
            raise SystemExit(f"no {f} in {Path.cwd()}: run this from the study's folder (where snakemake ran)")
    return study.smoke_config(load_config(*base, *configfiles, check_paths=False))


def read_benchmark(path: str | Path) -> dict[str, float]:
    """The last row of a Snakemake benchmark TSV (`s`, `cpu_time`, `max_rss`, ...) as numbers (NaN for '-')."""
    with open(path, newline="") as fh:
        row = list(csv.DictReader(fh, delimiter="\t"))[-1]
    out = {}
    for k, v in row.items():
        try:
            out[k] = float(v)
        except (TypeError, ValueError):
            out[k] = float("nan")
    return out


# --- a revision's files -----------------------------------------------------------------------------------

def export_tree(dest: Path, rev: str | None = None, paths: tuple[str, ...] = ()) -> Path:
    """The files of git revision `rev` (`git archive`), or of the working tree when rev is None (tracked and
    untracked-but-not-ignored files), limited to `paths` when given, copied into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    if rev is not None:
        arch = subprocess.run(["git", "archive", rev, *paths], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=arch.stdout, check=True)
        return dest
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", *paths],
                           cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


# --- the plain SGD loop -----------------------------------------------------------------------------------

def autograd_sgd(theta, activation: Callable, eps: float, lam: float) -> Callable:
    """The SGD step the way typical research code writes it: `theta` an nn.Parameter (N, d), the loss
    d*N * mean_batch 1/2 ||x - xhat||^2 (docs/theory.md §2 scaling) through autograd, torch.optim.SGD with
    lr = eps and weight decay lambda. Returns step(x) for one mini-batch x (B, d)."""
    import torch

    opt = torch.optim.SGD([theta], lr=eps, weight_decay=lam)
    n, d = theta.shape

    def step(x) -> None:
        loss = 0.5 * d * n * ((x - activation(x @ theta.T) @ theta / n) ** 2).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def torch_activation(name: str) -> Callable:
    import torch

    return dict(tanh=torch.tanh, relu=torch.relu, linear=lambda u: u, erf=torch.erf)[name]


def tree_env(tree: Path) -> dict:
    """Environment running `tree`'s own code: PYTHONPATH=tree/src (before the venv's editable install)
    and an `mfae` wrapper for that code first on PATH, as jobs call it under Snakemake."""
    import os
    import sys

    bindir = tree / ".bench_bin"
    bindir.mkdir(exist_ok=True)
    wrapper = bindir / "mfae"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{tree / "src"}" exec "{sys.executable}" -m mfae "$@"\n')
    wrapper.chmod(0o755)
    return dict(os.environ, PYTHONPATH=str(tree / "src"),
                PATH=os.pathsep.join([str(bindir), str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
