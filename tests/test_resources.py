"""Every rule's memory request covers what its jobs really use (mfae.stagecost.stage_resources, the batches'
mfae.plan.StudyPlan.resources): the default study (cut short by smoke.enabled: every job at its real d, N
and data) plus Fashion-MNIST at d = 784 (Debian's files, 60000 + 10000 images), each stage's largest
planned job run as its own process and its peak resident memory measured (ru_maxrss of a clean child)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mfae import config as config_mod
from mfae import jobsize, stagecost

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
ENV = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
LAUNCHER = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.PIPE); sys.stderr.write(p.stderr.decode()[-2000:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")


def peak_rss_mb(args: list[str], cwd: Path) -> float:
    """Peak resident memory (MiB) of `mfae ARGS`, through a small launcher: a child's ru_maxrss also
    counts its forking parent's pages up to the exec, so pytest itself must not be the parent."""
    r = subprocess.run([sys.executable, "-c", LAUNCHER, str(Path(sys.executable).with_name("mfae")), *args],
                       capture_output=True, text=True, cwd=cwd, env=ENV, timeout=900)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1]) / 1024


def planned_jobs(workdir: Path, configfile: Path) -> list[dict]:
    """Every job of a dry run, in an order that runs each after its inputs: rule, inputs, outputs,
    resources, command."""
    p = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                        "--configfile", str(configfile), "--cores", "1", "-n", "-p"],
                       capture_output=True, text=True, timeout=600, env=ENV)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    jobs = []
    for block in re.split(r"^\s*\[\w{3} \w{3} [^\]]*\].*$", p.stdout, flags=re.M)[1:]:
        field = {k: re.search(rf"^\s+{k}: (.*)$", block, re.M) for k in ("input", "output", "resources")}
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        if shell and field["output"]:
            res = dict(kv.split("=", 1) for kv in field["resources"].group(1).split(", "))
            jobs.append(dict(rule=re.search(r"^\s*(?:local)?rule (\w+):", block, re.M).group(1),
                             inputs=field["input"].group(1).split(", ") if field["input"] else [],
                             outputs=field["output"].group(1).split(", "), mem_mb=int(res["mem_mb"]),
                             runtime=int(res["runtime"]), args=mfae_args(shell.group(1))))
    return jobs


def mfae_args(command: str) -> list[str]:
    import shlex

    args = shlex.split(re.sub(r"\s*>\s*\S+\s+2>&1\s*$", "", command))
    assert args[0] == "mfae", command
    return args[1:]


def stage_of(rule: str) -> str:
    """The stage a rule belongs to (the generated rules: train_*, meanfield_*; each figure its own)."""
    return re.sub(r"^(train|meanfield)_.*", r"\1", rule)


@pytest.mark.slow
def test_every_stage_requests_at_least_its_measured_peak(tmp_path, monkeypatch):
    from mfae.cli import main

    overlay = {"smoke": {"enabled": True}}
    images = all((DEBIAN / f).is_file() for f in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"))
    if images:
        overlay["experiments"] = {"fashion_mnist": {"enabled": True, "data": {
            "source": "fashion-mnist", "path": str(DEBIAN), "fetch": False, "mirrors": []}}}
    (tmp_path / "config.yaml").write_text((ROOT / "config.yaml").read_text())  # the Snakefile's own config
    cfgfile = tmp_path / "overlay.yaml"
    cfgfile.write_text(yaml.safe_dump(overlay))
    jobs = planned_jobs(tmp_path, cfgfile)

    # each stage's job with the largest request (the model's own worst case), and every image job
    picked = {}
    for k, j in enumerate(jobs):
        key = (stage_of(j["rule"]), "fashion" in " ".join(j["outputs"]))
        if key not in picked or j["mem_mb"] > jobs[picked[key]]["mem_mb"]:
            picked[key] = k
    assert {s for s, _ in picked} >= {"data", "meanfield", "train", "convergence", "runs_table", "figure_F1_phases",
                                      "figure_F5_fashion_mnist", "figure_F7_rank"}
    made_by = {out: k for k, j in enumerate(jobs) for out in j["outputs"]}
    needed, todo = set(picked.values()), [i for k in picked.values() for i in jobs[k]["inputs"]]
    while todo:
        k = made_by.get(todo.pop())
        if k is not None and k not in needed:
            needed.add(k)
            todo += jobs[k]["inputs"]

    monkeypatch.chdir(tmp_path)
    rows, short = [], []
    for k in sorted(needed):
        j = jobs[k]
        for out in j["outputs"]:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        if k not in picked.values():  # only an input of a measured job: in this process, fast
            assert main(j["args"]) == 0, j
            continue
        peak = peak_rss_mb(j["args"], tmp_path)
        need = 1.2 * peak if stage_of(j["rule"]) == "data" and "fashion" in j["outputs"][0] else peak
        rows.append(f"{j['rule']:<50} peak {peak:7.0f} MB  request {j['mem_mb']:6d} MB")
        if j["mem_mb"] < need:
            short.append(rows[-1])
    print("\n".join(rows))
    assert not short, "requests below the measured peak (image data: 1.2x):\n" + "\n".join(short)
    if not images:
        pytest.skip(f"default study checked; Fashion-MNIST at d = 784 not: no Debian files in {DEBIAN} "
                    "(`make test-data`)")


def test_a_retry_asks_for_more(tmp_path):
    """Each retry (attempt k) gets k times the first attempt's memory and time, as training batches do."""
    c = config_mod.load_config(ROOT / "config.yaml", check_paths=False)
    for stage, where in (("data", dict(exp="phases", dkey="d48")), ("figure", dict(stem="F1_phases")),
                         ("convergence", dict(exp="convergence")), ("meanfield", dict(exp="digits", dkey="real"))):
        one, two = (stagecost.stage_resources(c, stage, attempt, **where) for attempt in (1, 2))
        assert two == {k: 2 * v for k, v in one.items()}, stage


def test_image_data_jobs_ask_for_more_than_the_default():
    """The request follows the job's shape: a 70000 x 784 image file needs gigabytes, a Gaussian
    eigenbasis the minimum."""
    c = config_mod.load_config(ROOT / "config.yaml", ROOT / "config/images.yaml", check_paths=False)
    image = stagecost.stage_resources(c, "data", exp="fashion_mnist", dkey="real")["mem_mb"]
    gauss = stagecost.stage_resources(config_mod.load_config(ROOT / "config.yaml", check_paths=False), "data",
                                 exp="phases", dkey="d48")["mem_mb"]
    assert gauss == jobsize.MIN_MEM_MB and image >= 1.2 * 2365  # the measured peak of that job (issue 21: ~2.5 GB)
