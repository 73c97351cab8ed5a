"""Paths reach the shell quoted: a results folder and a user data file whose names hold spaces, `$(...)`,
backticks and `;` work end to end, and run nothing but the intended commands (every rule's shell
command quotes its files; generated arguments use shlex.quote)."""

import re

import numpy as np
import pytest
import yaml

from test_workflow import ROOT, dump, smk

WEIRD = "a dir $(touch PWNED_dollar); `touch PWNED_tick` & x"


@pytest.mark.slow
@pytest.mark.long
def test_odd_paths_run_only_the_intended_commands(tmp_path):
    base = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    keep = {"phases", "digits"}
    for name, e in base["experiments"].items():
        e["enabled"] = name in keep
    data_dir = tmp_path / f"my data {WEIRD}"
    data_dir.mkdir()
    x = np.random.default_rng(0).standard_normal((60, 5)) @ np.diag([3.0, 2.0, 1.0, 0.5, 0.25])
    np.save(data_dir / "x $(touch PWNED_file).npy", x)
    base["experiments"]["userdata"] = dict(
        enabled=True, data=dict(source="array", path=str(data_dir / "x $(touch PWNED_file).npy")),
        activations=["tanh"], lams=[0.05], r0=0.3, lr=0.2, t_max=1, N=[20], seeds=[0])
    base["results"] = f"results {WEIRD}"
    cfg = dump(base, tmp_path / "odd.yaml")
    p = smk(tmp_path, cfg)
    out = p.stdout + p.stderr
    assert re.search(r"(\d+) of \1 steps \(100%\) done", out), out[-3000:]
    res = tmp_path / base["results"]
    assert (res / "runs.csv").is_file() and (res / "figures" / "F5_userdata.png").is_file()
    assert (res / "userdata" / "data" / "real.nc").is_file()
    # nothing the names spell was run, anywhere under the working folder
    assert not [f for f in tmp_path.rglob("PWNED*")], sorted(tmp_path.rglob("PWNED*"))
