"""Convergence to the mean-field limit (docs/theory.md §5): `fit` holds the floor + power-law fit and its
bootstrap (pure numpy), `dataset` the per-run errors and the `mfae convergence` product."""

from .dataset import (METRICS, collect_runs, convergence_dataset, fits_table, run_errors,  # noqa: F401
                      tolerances)
from .fit import bootstrap_fit, fit_floor_power_law, required_n  # noqa: F401
