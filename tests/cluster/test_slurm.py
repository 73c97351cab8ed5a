"""SLURM integration tests: Snakemake + snakemake-executor-plugin-slurm against a real
single-node SLURM with 2 fake GPUs (see conftest.py, slurm_up.sh). Run with
`make test-cluster` (root only; deselected from `make test` by the `slurm` marker).

Both tests run with the user's profile profiles/slurm plus the test overlay
tests/cluster/profile, then ask slurmctld (`scontrol show job`, jobs stay visible for
MinJobAge=600 s) what was submitted: every non-local job went through SLURM and completed,
jobs of rule `train` asked for a GPU (TresPerJob=gres:gpu:1, from --gpus=1), no other job did.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from slurm_harness import REPO, SlurmJob, diagnostics, run_snakemake, slurm_jobs

pytestmark = pytest.mark.slurm

MINI = Path(__file__).resolve().parent / "mini" / "Snakefile"


def submitted_rules(output: str) -> Counter:
    """Rules of the jobs Snakemake ran remotely (`rule x:`; local ones print `localrule x:`)."""
    return Counter(re.findall(r"^rule (\S+):$", output, flags=re.M))


def check_slurm_jobs(workdir: Path, output: str) -> list[SlurmJob]:
    """Every remote job of the run is a completed SLURM job; `train` jobs (only) asked for a GPU."""
    jobs = slurm_jobs(workdir)
    info = diagnostics(workdir, output)
    assert jobs, "no SLURM job has this working directory\n" + info
    assert Counter(j.rule for j in jobs) == submitted_rules(output), info
    for j in jobs:
        assert (j.state, j.exit_code) == ("COMPLETED", "0:0"), f"job {j.id}\n{info}"
        if j.rule == "train":
            assert "gpu" in j.gpu_request, f"train job {j.id} did not ask for a GPU: {j.fields}"
        else:
            assert not j.gpu_request, f"{j.rule} job {j.id} asked for a GPU: {j.gpu_request}"
    assert any(j.rule == "train" for j in jobs), "no train job went through SLURM\n" + info
    # --slurm-keep-successful-logs (overlay): one log per job, named after its SLURM id
    logged = {p.stem for p in (workdir / ".snakemake" / "slurm_logs").rglob("*.log")}
    assert {j.id for j in jobs} <= logged, info
    return jobs


def test_cluster_is_up(slurm_cluster):
    out = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N %T %G %P"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert f"{slurm_cluster['host']} idle gpu:2 {slurm_cluster['partition']}*" in out.stdout


def test_mini_workflow(slurm_cluster, tmp_path):
    """2 `train` jobs (gpu=1 via profiles/slurm) after one CPU-only `prep` job (threads: 2)."""
    proc = run_snakemake(tmp_path, ["--snakefile", str(MINI)], timeout=180)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, diagnostics(tmp_path, output)
    assert "4 of 4 steps (100%) done" in output, output[-3000:]

    jobs = {j.id: j for j in check_slurm_jobs(tmp_path, output)}
    assert sorted(j.rule for j in jobs.values()) == ["prep", "train", "train"]

    # Each output was written inside its SLURM job; trains saw their GPU.
    seen_gpus = set()
    for name in ("prep", "train_1", "train_2"):
        text = (tmp_path / "out" / f"{name}.txt").read_text()
        job_id = re.search(r"job=(\d+)", text).group(1)
        assert job_id in jobs, f"{name}.txt written by unknown job {job_id}: {text}"
        job = jobs[job_id]
        assert job.rule == name.split("_")[0]
        if job.rule == "train":
            cuda = re.search(r"cuda=(\S+)", text).group(1)
            assert cuda in {"0", "1"}, f"CUDA_VISIBLE_DEVICES not set by SLURM: {text}"
            seen_gpus.add(cuda)
            # the mini train rule sets no runtime (the real one takes it from mfae.plan): the defaults
            assert job.fields["TimeLimit"] == "00:30:00"  # default-resources runtime
            assert job.fields["MinMemoryNode"] == "2000M"  # default-resources mem_mb
        else:
            assert job.fields["NumCPUs"] == "2"  # cpus_per_task = threads (2)
            assert job.fields["MinMemoryNode"] == "2000M"  # default-resources mem_mb
            assert job.fields["TimeLimit"] == "00:30:00"  # default-resources runtime
        assert job.fields["Partition"] == slurm_cluster["partition"]
    assert seen_gpus, "no train job saw a GPU"


def subset_config(test_config: Path, keep: str) -> dict:
    """Config overlay: only experiment `keep` of the test config, with 2 training runs.

    Every SLURM job of the real workflow costs ~15 s here (a Snakemake plus an mfae process
    on 2 shared CPUs), so the whole .test config (~50 jobs) takes ~6 min; this subset (data,
    2 x train, meanfield, runs_table, its figures) takes ~2 min. MFAE_SLURM_FULL=1 runs all.
    """
    experiments = yaml.safe_load(test_config.read_text())["experiments"]
    if keep not in experiments:
        keep = next(iter(experiments))
    overlay = {name: {"enabled": False} for name in experiments if name != keep}
    kept = {}
    if "N" in experiments[keep]:
        kept["N"] = experiments[keep]["N"][:1]
    if "N_over_d" in experiments[keep]:
        kept["N_over_d"] = experiments[keep]["N_over_d"][:1]
    if "d" in experiments[keep]:
        kept["d"] = experiments[keep]["d"][:1]
    kept["seeds"] = experiments[keep]["seeds"][:2]
    overlay[keep] = kept
    return {"experiments": overlay}


def test_real_workflow(slurm_cluster, tmp_path):
    """The repository's workflow (the `phases` part of .test/config.yaml) through SLURM.

    Runs, in a scratch directory that holds copies of config.yaml and .test/config.yaml
    (snapshots: edits in the repo during the run do not reach the jobs) and a symlink to
    config/ (and data/ if present), so that results/ and .snakemake/ stay out of the repo:
      snakemake --snakefile <repo>/Snakefile \\
        --configfile .test/config.yaml subset.yaml \\
        --profile <repo>/profiles/slurm --profile <repo>/tests/cluster/profile
    """
    snakefile = REPO / "Snakefile"
    test_config = REPO / ".test" / "config.yaml"
    if not snakefile.exists():
        pytest.skip(f"{snakefile} does not exist yet")
    if not test_config.exists():
        pytest.skip(f"{test_config} does not exist yet")
    if (REPO / "config.yaml").exists():  # the Snakefile's `configfile:` (relative to the workdir)
        shutil.copy2(REPO / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / ".test").mkdir()
    shutil.copy2(test_config, tmp_path / ".test" / "config.yaml")
    for name in ("config", "data"):  # paths in configs are relative to the working dir
        if (REPO / name).exists():
            (tmp_path / name).symlink_to(REPO / name)
    configs = [".test/config.yaml"]
    full = os.environ.get("MFAE_SLURM_FULL") == "1"
    if not full:
        (tmp_path / "subset.yaml").write_text(yaml.safe_dump(subset_config(test_config, "phases")))
        configs.append("subset.yaml")
    args = ["--snakefile", str(snakefile), "--configfile", *configs]

    proc = run_snakemake(tmp_path, args, timeout=900 if full else 240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, diagnostics(tmp_path, output)
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    jobs = check_slurm_jobs(tmp_path, output)
    if not full:
        assert sum(j.rule == "train" for j in jobs) == 2, diagnostics(tmp_path, output)
    # train jobs get the cost model's limits (mfae.plan): these tiny CPU runs, the minimum of each
    for job in (j for j in jobs if j.rule == "train"):
        assert job.fields["TimeLimit"] == "00:05:00"  # plan.MIN_RUNTIME_MIN
        assert job.fields["MinMemoryNode"] == "1000M"  # plan.MIN_MEM_MB

    # All targets exist and are up to date: a dry run has nothing left to do.
    dry = run_snakemake(tmp_path, [*args, "--dry-run"], timeout=120)
    dry_out = dry.stdout + dry.stderr
    assert dry.returncode == 0, dry_out[-3000:]
    assert "Nothing to be done" in dry_out, dry_out[-3000:]
    assert (tmp_path / "results").is_dir()
