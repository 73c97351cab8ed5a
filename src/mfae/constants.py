"""Constants several layers share (CLI argument types, the config checks, the trainer, the grid, the
planner): bounds of the config schema, the names of the real-data sources, their IDX file names and
known sizes, and the size of a test split. A leaf module: it imports nothing, so the trainer and every
CLI command can use it without pulling in the study grid or YAML."""

from __future__ import annotations

SEED_MAX = 2**32 - 1  # the schema's bounds: seeds for numpy/torch, sizes well inside int64
SIZE_MAX = 2**31 - 1
N_TIMES_MAX = 1_000_000  # the schema's bound on train.n_times and meanfield.n_times

# the real-data sources (mfae.data loads them; `mfae data` and the config schema name them)
REAL_SOURCES = ("digits", "mnist", "fashion-mnist", "array")
IDX_SOURCES = ("mnist", "fashion-mnist")  # a folder of four IDX files, which `mfae data fetch` can download
REAL_EXPERIMENTS = ("digits", "mnist", "fashion_mnist", "userdata")  # each gets its own figure F5_<name>
# the four files of an IDX dataset folder (MNIST layout; each also found gzipped as <stem>.gz)
IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_IMAGES = (IDX_STEMS[0], IDX_STEMS[2])  # train and test images: what `mfae data` reads

# sizes of the real-data sources known without reading them: (features d, rows, test rows; 0 when the
# test set is split off the rows by data.test_fraction). scikit-learn's digits: 1797 images of 8 x 8
# pixels; MNIST and Fashion-MNIST: 60000 training and 10000 test images of 28 x 28 pixels.
REAL_SHAPES = {"digits": (64, 1797, 0), "mnist": (784, 60000, 10000), "fashion-mnist": (784, 60000, 10000)}


def split_sizes(n: int, test_fraction: float) -> tuple[int, int]:
    """(training rows, test rows) when `n` distinct rows are split by `test_fraction` (mfae.data.real_data):
    at least one test row and at least two training rows."""
    n_test = min(max(1, int(round(test_fraction * n))), n - 2)
    return n - n_test, n_test
