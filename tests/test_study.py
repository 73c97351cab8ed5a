"""The study's experiment grid (mfae.study): job counts of the shipped configs, paths, data
arguments, the figure table and the config checks beyond the schema."""

import copy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gridcount import count_runs
from mfae import MfaeError, study
from mfae import config as config_mod

ROOT = Path(__file__).resolve().parents[1]


def cfg(name: str = ".test/config.yaml") -> dict:
    return config_mod.read_yaml(ROOT / name)


def test_train_jobs_of_the_shipped_configs():
    """One job per run of each enabled experiment's grid (counted from the YAML by tests/gridcount.py),
    each with its own output path."""
    for name in ("config.yaml", "config/paper.yaml", ".test/config.yaml"):
        c = cfg(name)
        jobs = study.train_jobs(c)
        assert len(jobs) == count_runs(c) > 0, name
        assert len({j["path"] for j in jobs}) == len(jobs), name


def test_doubling_an_experiments_seeds_doubles_its_runs():
    c = cfg()
    phases = c["experiments"]["phases"]
    seeds = phases.get("seeds", [0])
    before = study.train_jobs(c)
    n_phases = sum(j["experiment"] == "phases" for j in before)
    phases["seeds"] = seeds + [max(seeds) + 1 + i for i in range(len(seeds))]
    assert n_phases > 0 and len(study.train_jobs(c)) == len(before) + n_phases


def test_a_training_job_row():
    jobs = study.train_jobs(cfg("config.yaml"))
    assert jobs[0] == dict(experiment="phases", activation="tanh", lam=0.05, d=48, N=300, seed=0, r0=0.3, lr=0.12,
                           t_max=12, batch=8, n_times=25, n_test=4096, dtype="float32", device="auto", data="d48",
                           path="results/phases/train/tanh_lam0.05/d48/N300_seed0.nc")
    digits = [j for j in jobs if j["experiment"] == "digits"]
    assert [(j["d"], j["N"], j["seed"], j["data"]) for j in digits] == [(64, 3000, 0, "real"), (64, 3000, 1, "real")]
    low = [j for j in jobs if j["experiment"] == "convergence_lowrank" and j["seed"] == 0]
    assert [(j["d"], j["N"]) for j in low] == [(d, n) for d in (12, 24, 48) for n in (6, 24, 96, 384)]
    rank = [(j["data"], j["N"]) for j in jobs if j["experiment"] == "convergence_rank" and j["seed"] == 0]
    assert rank == [(f"d48_r{r}", n) for r in (3, 6, 12, 24) for n in sorted({max(1, round(m * r))
                                                                             for m in (0.5, 2, 8, 32)})]
    assert rank[0] == ("d48_r3", 2) and all(j["d"] == 48 for j in jobs if j["experiment"] == "convergence_rank")


def test_n_over_d_rounds_to_nearest_at_least_one_and_dedupes():
    c = cfg()
    c["experiments"]["convergence"]["N_over_d"] = [0.5, 1.5, 0.1, 0.12]
    # 5 * (0.5, 1.5, 0.1, 0.12) = 2.5, 7.5, 0.5, 0.6 -> round half to even: 2, 8, 0 -> 1, 1
    assert study.n_values(c, "convergence", "d5") == [1, 2, 8]
    assert study.n_values(c, "phases", "d12") == [20, 60]


def test_paths_and_data_args():
    c = cfg("config.yaml")
    assert study.dkeys(c, "convergence") == ["d24", "d48", "d96"] and study.dkeys(c, "digits") == ["real"]
    assert study.meanfield_files(c, "shrinkage", act="relu") == ["results/shrinkage/meanfield/relu_lam0.05/d40.nc",
                                                                 "results/shrinkage/meanfield/relu_lam0.2/d40.nc"]
    assert study.data_args(c, "phases", "d48") == ("gaussian --eigenvalues 4,1,0.4 --fractions 1,1,1 --d 48"
                                                   " --rotate --seed 0")
    # low rank: eigenvalue d/r = 12/6 on r = 6 directions, 0 on the other 6
    assert study.data_args(c, "convergence_lowrank", "d12") == ("gaussian --eigenvalues 2,0 --fractions 6,6 --d 12"
                                                                " --rotate --seed 3")
    assert study.data_args(c, "digits", "real") == "digits --test-fraction 0.2 --seed 0 --max-samples 0"


def test_a_run_path_names_its_experiment():
    """The runs table reads a run's experiment from its path: every run file of the shipped study,
    built by study.train_files, gives back its own experiment; a file outside the layout gives ""."""
    from mfae.layout import experiment_of

    c = cfg("config.yaml")
    for exp in study.experiments(c):
        files = study.train_files(c, exp)
        assert files and {experiment_of(f) for f in files} == {exp}
        assert {experiment_of(f"/elsewhere/{f}") for f in files} == {exp}  # wherever results/ lies
    assert experiment_of("results/phases/train/N20_seed0.nc") == ""  # four levels up is not an experiment
    assert experiment_of("N20_seed0.nc") == ""


def test_figure_options_are_the_figure_settings():
    c = cfg("config.yaml")
    c["figures"].update(shrinkage_times=[1, 2.5], n_images=5)
    assert study.figure_options(c, "F1_phases") == {}
    assert study.figure_options(c, "F2_shrinkage") == dict(times="1,2.5", activation="tanh")
    assert study.figure_options(c, "F5_digits") == dict(times="0.5,1,4", n_images=5)
    assert study.figure_options(c, "F7_rank") == {}


def test_rank_sweep_grid():
    """A rank sweep: one data file per rank at one d (d12_r2), N = round(ratio * r), fitted by rank."""
    c = cfg()
    assert study.dkeys(c, "convergence_rank") == ["d12_r2", "d12_r4"]
    assert study.parse_dkey("d12_r4") == (12, 4) and study.parse_dkey("d48") == (48, None)
    assert study.n_values(c, "convergence_rank", "d12_r2") == [1, 2, 4, 8]
    assert study.n_values(c, "convergence_rank", "d12_r4") == [2, 4, 8, 16]
    assert study.data_args(c, "convergence_rank", "d12_r4") == ("gaussian --eigenvalues 3,0 --fractions 4,8 --d 12"
                                                                " --rotate --seed 4")
    assert study.convergence_axis(c, "convergence_rank") == "rank"
    assert study.convergence_axis(c, "convergence_lowrank") == "d"
    jobs = [j for j in study.train_jobs(c) if j["experiment"] == "convergence_rank"]
    assert len(jobs) == 2 * 4 * 2 and {j["d"] for j in jobs} == {12}
    assert jobs[0]["path"] == "results/convergence_rank/train/tanh_lam0.5/d12_r2/N1_seed0.nc"
    assert study.figure_inputs(c, "F7_rank") == dict(convergence=["results/convergence_rank/convergence.nc"])
    assert {"results/figures/F7_rank.png", "results/convergence_rank/convergence_fits.csv"} <= set(study.targets(c))


def test_figure_table_and_targets():
    c = cfg()
    assert study.figure_inputs(c, "F1_phases") == dict(
        train=[f"results/phases/train/tanh_lam0.1/d12/N{n}_seed{s}.nc" for n in (20, 60) for s in (0, 1)],
        meanfield="results/phases/meanfield/tanh_lam0.1/d12.nc")
    assert len(study.figure_inputs(c, "F2_shrinkage")["train"]) == 1  # first activation only
    assert len(study.figure_inputs(c, "F3_activations")["meanfield"]) == 2
    assert study.figure_activation(c, "F2_shrinkage") == "tanh"
    assert study.figure_inputs(c, "F5_digits")["data"] == ["results/digits/data/real.nc"]
    c["experiments"]["convergence_lowrank"]["enabled"] = False
    assert study.figure_inputs(c, "F4_convergence") == dict(convergence=["results/convergence/convergence.nc"])
    for name, e in c["experiments"].items():
        e["enabled"] = name == "phases"
    assert study.targets(c) == ["results/runs.csv"] + [f"results/figures/{s}.{x}"
                                                       for s in ("F1_phases", "F6_projections") for x in ("png", "pdf")]
    assert study.figure_inputs(c, "F2_shrinkage") == dict(train=[], meanfield=[])
    assert study.figure_activation(c, "F2_shrinkage") is None


def test_real_dimension_of_a_user_matrix(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((10, 7)))
    (tmp_path / "X.csv").write_text("1,2,3\n4,5,6\n")
    assert study.real_dimension(dict(source="array", path=str(tmp_path / "X.npy"))) == 7
    assert study.real_dimension(dict(source="array", path=str(tmp_path / "X.csv"))) == 3
    assert study.real_dimension(dict(source="array", path=str(tmp_path / "missing.npy"))) is None


def test_the_figure_table_covers_the_schemas_experiments():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert set(study.FIGURES) >= {"F1_phases", "F2_shrinkage", "F3_activations", "F4_convergence", "F6_projections"}
    assert set(schema["properties"]["experiments"]["properties"]) == {x for f in study.FIGURES.values()
                                                                      for x in f.experiments}


def test_each_figure_is_drawn_by_a_figures_subcommand_whose_help_is_its_title():
    import argparse

    from mfae.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    figures = next(a for a in sub.choices["figures"]._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in figures._choices_actions}
    assert set(helps) == {f.command for f in study.FIGURES.values()}
    for stem, fig in study.FIGURES.items():
        assert helps[fig.command] == fig.title and fig.title.startswith(stem.split("_")[0] + ": "), stem


def bad(edit):
    c = copy.deepcopy(cfg())
    edit(c)
    return c


BAD = [
    ("nan lr", lambda c: c["experiments"]["phases"].update(lr=float("nan")), "experiments.phases.lr: must be a finite"),
    ("inf lam", lambda c: c["experiments"]["shrinkage"].update(lams=[0.1, float("inf")]),
     "experiments.shrinkage.lams[1]: must be a finite"),
    ("inf eigenvalue", lambda c: c["experiments"]["phases"]["data"].update(eigenvalues=[float("inf"), 1, 1]),
     "experiments.phases.data.eigenvalues[0]:"),
    ("nan time", lambda c: c["figures"].update(realdata_times=[float("nan")]), "figures.realdata_times[0]:"),
    ("zero eigenvalues", lambda c: c["experiments"]["phases"]["data"].update(eigenvalues=[0, 0, 0]),
     "experiments.phases.data.eigenvalues: all zero"),
    ("time after t_max", lambda c: c["figures"].update(projection_times=[0, 3]),
     "figures.projection_times: time 3 is after the end of experiments.phases (t_max = 2)"),
    ("realdata time", lambda c: c["figures"].update(realdata_times=[0.5, 1.5]), "figures.realdata_times: time 1.5"),
    ("none enabled", lambda c: [e.update(enabled=False) for e in c["experiments"].values()],
     "experiments: no experiment"),
    ("no experiments", lambda c: c.update(experiments={}), "experiments: no experiment"),
    ("d not split", lambda c: c["experiments"]["phases"].update(d=[13]), "experiments.phases.d: d=13"),
    ("rank", lambda c: c["experiments"]["convergence_lowrank"].update(d=[3]), "experiments.convergence_lowrank.d:"),
    ("huge N", lambda c: c["experiments"]["convergence"].update(N_over_d=[2**31]), "experiments.convergence.N_over_d:"),
    ("N and N_over_d", lambda c: c["experiments"]["phases"].update(N_over_d=[2]), "experiments.phases: give exactly"),
    ("n_times beyond steps", lambda c: (c.setdefault("train", {}).update(n_times=10**5)),
     "train.n_times: 100000 measurements exceed the"),
    ("ranks at two d", lambda c: c["experiments"]["convergence_rank"].update(d=[12, 24]),
     "experiments.convergence_rank.d: a rank sweep"),
    ("rank and ranks", lambda c: c["experiments"]["convergence_rank"]["data"].update(rank=2),
     "experiments.convergence_rank.data.rank: lowrank data need exactly one"),
    ("rank not below d", lambda c: c["experiments"]["convergence_rank"]["data"].update(ranks=[2, 12]),
     "experiments.convergence_rank.d: every d must exceed the rank, got d = 12 and rank 12"),
    ("N_over_r without ranks", lambda c: (c["experiments"]["convergence"].pop("N_over_d"),
                                          c["experiments"]["convergence"].update(N_over_r=[1, 2])),
     "experiments.convergence.N_over_r: only for a rank sweep"),
    ("ranks on gaussian data", lambda c: c["experiments"]["convergence"]["data"].update(ranks=[2]),
     "experiments.convergence.data.ranks: only for lowrank"),
    ("mnist", lambda c: c["experiments"]["mnist"].update(enabled=True, data=dict(source="mnist", path="/nonexistent")),
     "experiments.mnist.data.path: /nonexistent does not exist"),
]


@pytest.mark.parametrize("name, edit, message", BAD, ids=[b[0] for b in BAD])
def test_check_config_names_the_key(name, edit, message):
    with pytest.raises(config_mod.ConfigError, match="^" + message.replace("[", r"\[").replace("(", r"\(")
                       .replace(")", r"\)")):
        config_mod.check_config(bad(edit))


def test_shipped_configs_pass_and_a_disabled_figure_is_not_checked():
    config_mod.check_config(cfg())
    config_mod.check_config(cfg("config.yaml"))
    config_mod.check_config(cfg("config/paper.yaml"), check_paths=False)  # MNIST files not needed to plan
    # the late realdata time concerns only enabled real-data experiments
    config_mod.check_config(bad(lambda c: (c["experiments"]["digits"].update(enabled=False),
                                      c["figures"].update(realdata_times=[100]))))
    assert issubclass(config_mod.ConfigError, MfaeError)


def test_duplicate_keys_are_rejected(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("experiments:\n  phases:\n    lr: 0.1\n    t_max: 2\n    lr: 0.2\n")
    with pytest.raises(config_mod.ConfigError, match=r"^experiments.phases.lr: duplicate key \(lines 3 and 5 of .*c.yaml\)"):
        config_mod.read_yaml(f)
    f.write_text("results: a\nexperiments: {phases: {d: [1]}}\nresults: b\n")
    with pytest.raises(config_mod.ConfigError, match="^results: duplicate key"):
        config_mod.load_config(f)


def test_load_config_merges_like_snakemake(tmp_path):
    over = tmp_path / "over.yaml"
    over.write_text("experiments:\n  phases:\n    seeds: [5]\n")
    c = config_mod.load_config(ROOT / ".test/config.yaml", over)
    assert c["experiments"]["phases"]["seeds"] == [5] and c["experiments"]["phases"]["lr"] == 0.2


def test_study_does_not_need_snakemake():
    code = "import sys, mfae.study; assert 'snakemake' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("overlays, n_train", [
    (["config/images.yaml"], 24),                                   # 2 data sets x 2 lams x 3 N x 2 seeds
    (["config/images.yaml", "config/images-offline.yaml"], 24),     # the same jobs, read from Debian's files
    (["config/workstation.yaml"], 45 + 75 + 90),                    # full rank, low rank, rank sweep
])
def test_workstation_and_image_configs_merge_and_pass(overlays, n_train):
    c = config_mod.load_config(ROOT / "config.yaml", *(ROOT / o for o in overlays), check_paths=False)
    assert len(study.train_jobs(c)) == n_train
    if "config/images-offline.yaml" in overlays:
        assert {c["experiments"][e]["data"]["path"] for e in ("mnist", "fashion_mnist")} == {
            "/usr/share/datasets/fashion-mnist"}
