"""Convergence to the mean-field limit (docs/theory.md §5): `fit` holds the floor + power-law fit and its
bootstrap (pure numpy), `errors` the per-run errors and their records, `dataset` the `mfae convergence`
product."""

from .dataset import axis_of, convergence_dataset, fits_table, table_columns, tolerances
from .errors import AXES, METRICS, collect_runs, data_rank, run_errors
from .fit import (
                  N_STAR_ABOVE,
                  N_STAR_BELOW,
                  N_STAR_NOT_FITTED,
                  N_STAR_OK,
                  bootstrap_fit,
                  fit_floor_power_law,
                  n_star_in_range,
                  rank_n_risk_bound,
                  required_n,
)

__all__ = ["AXES", "METRICS", "N_STAR_ABOVE", "N_STAR_BELOW", "N_STAR_NOT_FITTED", "N_STAR_OK", "axis_of",
           "bootstrap_fit", "collect_runs", "convergence_dataset", "data_rank", "fit_floor_power_law", "fits_table",
           "n_star_in_range", "rank_n_risk_bound", "required_n", "run_errors", "table_columns", "tolerances"]
