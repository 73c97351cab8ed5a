"""Convergence to the mean-field limit (docs/theory.md §5): `fit` holds the floor + power-law fit and its
bootstrap (pure numpy), `dataset` the per-run errors and the `mfae convergence` product."""

from .dataset import (AXES, METRICS, axis_of, collect_runs, convergence_dataset, data_rank,  # noqa: F401
                      fits_table, run_errors, table_columns, tolerances)
from .fit import (N_STAR_ABOVE, N_STAR_BELOW, N_STAR_NOT_FITTED, N_STAR_OK, bootstrap_fit,  # noqa: F401
                  fit_floor_power_law, n_star_in_range, rank_n_risk_bound, required_n)
