"""Constants several layers share (CLI argument types, the config checks, the trainer, the grid):
bounds of the config schema and the names of the real-data sources. A leaf module: it imports nothing,
so the trainer and every CLI command can use it without pulling in the study grid or YAML."""

from __future__ import annotations

SEED_MAX = 2**32 - 1  # the schema's bounds: seeds for numpy/torch, sizes well inside int64
SIZE_MAX = 2**31 - 1
N_TIMES_MAX = 1_000_000  # the schema's bound on train.n_times and meanfield.n_times

# the real-data sources (mfae.data loads them; `mfae data` and the config schema name them)
REAL_SOURCES = ("digits", "mnist", "fashion-mnist", "array")
IDX_SOURCES = ("mnist", "fashion-mnist")  # a folder of four IDX files, which `mfae data fetch` can download
REAL_EXPERIMENTS = ("digits", "mnist", "fashion_mnist", "userdata")  # each gets its own figure F5_<name>
