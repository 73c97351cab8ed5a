"""The default of every setting, in one place: the study config's (the JSON schema
workflow/schemas/config.schema.yaml states the same defaults for Snakemake; tests/test_defaults.py checks
that they agree), one SGD run's (`mfae.runconfig.TrainConfig`) and the `mfae` command line's. A leaf
module of plain values: the CLI reads it without importing numpy, torch or YAML.

A default given in two places here is written once and referred to (e.g. TrainConfig's `lr` is the
experiments' `lr`), so a change reaches the config, the trainer and the command line together.
"""

from __future__ import annotations

from typing import Any

RESULTS = "results"  # the study's output folder (config key `results`)

# one experiment of the study (experiments.<name>; its `data:` block below)
EXPERIMENT: dict[str, Any] = dict(enabled=True, activations=["tanh"], lams=[0.1], r0=0.3, lr=0.12, t_max=6,
                                  seeds=[0], n_boot=1000, tol=0.01)
DATA: dict[str, Any] = dict(rotate=False, seed=0, test_fraction=0.2, max_samples=0, max_test=0, fetch=False,
                            mirrors=[], twin_seed=0, embed_seed=0)

# the top-level settings blocks of the config
SECTIONS: dict[str, dict[str, Any]] = {
    "train": dict(device="auto", dtype="float32", batch=8, n_times=25, n_test=4096, checkpoint_seconds=300,
                  plan_device="auto", pack_seconds=120),
    "meanfield": dict(n_times=200),
    "cluster": dict(max_runtime_min=240, submission_minutes=30),
    "figures": dict(shrinkage_times=[1, 3, 10], realdata_times=[0.5, 1, 4], projection_times=[0, 1, 3, 6],
                    n_images=8),
    "smoke": dict(enabled=False, steps=32, n_times=3, n_test=256, meanfield_n_times=20, n_boot=20),
}

# an experiment's intrinsic_dim block (mfae intrinsic-dim on each data variant)
INTRINSIC_DIM: dict[str, Any] = dict(n_samples=1000, repeats=5, seed=0)

# the parameters of one SGD run that the config does not set (`mfae train` flags and TrainConfig fields)
RUN: dict[str, Any] = dict(test_seed=20210216, block_steps=256, diverge_risk=1e4, n_projections=1000, n_modes=16)

# The one default of the command line that differs from the config's, and why: `mfae figures shrinkage`
# draws any runs, so its default stopping times lie within the default t_max (6); the config's default
# belongs to the shipped shrinkage experiment, whose t_max is 10.
CLI_SHRINKAGE_TIMES = [1.0, 3.0, 6.0]
