"""The study's figures, one module each (F1 phases ... F7 rank), over the netCDF products.

Every plotting function takes already-loaded xarray datasets and an output path ending in `.png`; it
writes the PNG (dpi 150) and a PDF with the same stem, atomically (`style.save_figure`), and returns
both paths (called as `style.save_figure`, one patchable place). Quantities are dimensionless throughout (docs/theory.md §2). NaN is never plotted
silently: a run that diverged (or holds non-finite measurements) is left out and named on the figure.
Plotting libraries are imported when a figure is drawn, not when this package is imported.
"""

from .. import MfaeError  # noqa: F401  (figures raise it for bad input)
from .activations import plot_activations  # noqa: F401
from .convergence import plot_convergence  # noqa: F401
from .intrinsic import plot_intrinsic  # noqa: F401
from .load import (MF_VARS, TRAIN_VARS, Run, RunSet, check_match, load_meanfields, load_runs,  # noqa: F401
                   mf_at, run_from_dataset)
from .phases import plot_phases  # noqa: F401
from .projections import plot_projections  # noqa: F401
from .rank import plot_rank  # noqa: F401
from .realdata import plot_realdata, realdata_summary, summary_line  # noqa: F401
from .shrinkage import plot_shrinkage  # noqa: F401
from .style import check_out, new_figure, save_figure, setup_style  # noqa: F401
