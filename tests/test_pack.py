"""Packing the study's runs into training processes (mfae.pack): every run in exactly one batch, big N
groups alone, small ones together within the budget, and the partial-rerun trade-off it promises."""

import copy
from pathlib import Path

import pytest

from mfae import pack, smoke, study
from mfae.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def test_pack_groups_hand_cases():
    # budget 10: 12 >= 10 alone; 2 + 3 + 4 = 9 fit; 5 starts a new batch (9 + 5 > 10); 9.5 after 5 does not fit
    groups = [(10, 2.0), (20, 3.0), (40, 4.0), (80, 5.0), (160, 9.5), (320, 12.0)]
    assert pack.pack_groups(groups, 10.0) == [[10, 20, 40], [80], [160], [320]]
    assert pack.pack_groups(groups, 1e9) == [[10, 20, 40, 80, 160, 320]]
    assert pack.pack_groups(groups, 1.0) == [[10], [20], [40], [80], [160], [320]]
    assert pack.pack_groups([(5, 0.0), (3, 0.0)], 1.0) == [[3, 5]]  # in increasing N
    assert pack.pack_groups([], 1.0) == []


@pytest.mark.parametrize("name", ["config.yaml", ".test/config.yaml", "config/paper.yaml"])
def test_every_run_in_exactly_one_batch(name):
    config = smoke.smoke_config(load_config(ROOT / name, check_paths=False))
    jobs = study.train_jobs(config)
    batches = pack.train_batches(config)
    paths = [p for b in batches for p in b.paths]
    assert sorted(paths) == sorted(j["path"] for j in jobs) and len(set(paths)) == len(paths)
    assert len({b.name for b in batches}) == len(batches)  # one Snakemake rule each
    by_path = {j["path"]: j for j in jobs}
    for b in batches:
        for (N, seed), p in zip(b.runs, b.paths):  # the run list matches the outputs, in order
            j = by_path[p]
            assert (j["N"], j["seed"], j["experiment"], j["activation"], j["lam"], j["data"]) == (
                N, seed, b.experiment, b.activation, b.lam, b.data)
        for N in set(b.Ns):  # all seeds of an N share their batch
            seeds = study.experiment(config, b.experiment)["seeds"]
            assert sorted(s for n, s in b.runs if n == N) == sorted(seeds)


def test_budget_bounds_the_work_of_shared_batches():
    config = load_config(ROOT / "config.yaml", check_paths=False)
    config["train"]["pack_seconds"] = 1.0
    for b in pack.train_batches(config):
        if len(set(b.Ns)) > 1:  # a batch of several N groups stays within the budget
            assert b.work_seconds <= 1.0
        assert b.work_seconds > 0


def _batches(config):
    return {b.paths: b for b in pack.train_batches(config)}


def test_adding_a_big_n_leaves_every_other_batch_as_it_was():
    base = load_config(ROOT / ".test/config.yaml", check_paths=False)
    base["train"]["pack_seconds"] = 0.1
    more = copy.deepcopy(base)
    more["experiments"]["phases"]["N"] = [20, 60, 5000]
    old, new = _batches(base), _batches(more)
    added = [b for p, b in new.items() if p not in old]
    assert [b.runs for b in added] == [((5000, 0), (5000, 1))]
    assert all(p in new and new[p].runs == b.runs for p, b in old.items())


def test_changing_one_cells_lambda_leaves_other_batches_as_they_were():
    base = load_config(ROOT / "config.yaml", check_paths=False)
    other = copy.deepcopy(base)
    other["experiments"]["convergence"]["lams"] = [0.2]
    old, new = _batches(base), _batches(other)
    changed = {b.experiment for p, b in old.items() if p not in new}
    assert changed == {"convergence"}


def test_packing_depends_on_the_config_alone(tmp_path):
    """Neither the data files nor the device: a study moved from a laptop to a cluster retrains nothing."""
    config = load_config(ROOT / ".test/config.yaml", check_paths=False)
    a = pack.train_batches(config)
    (tmp_path / "results").mkdir()
    b = pack.train_batches({**config, "results": str(tmp_path / "results")})
    assert [x.runs for x in a] == [y.runs for y in b]
