"""What the benchmark scripts share: timing and Snakemake's benchmark files. The plain SGD that mfae's
trainer is compared with is mfae.reference (the tests' reference too).

Only the standard library is imported at module level (mfae inside the functions that need it).
"""

from __future__ import annotations

import csv
import statistics
import time
from pathlib import Path
from typing import Callable, Mapping

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
    from mfae import smoke
    from mfae.config import load_config

    base = [] if configfiles and configfiles[0].resolve() == Path("config.yaml").resolve() else [Path("config.yaml")]
    for f in base + list(configfiles):
        if not f.is_file():
            raise SystemExit(f"no {f} in {Path.cwd()}: run this from the study's folder (where snakemake ran)")
    return smoke.smoke_config(load_config(*base, *configfiles, check_paths=False))


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
