"""SLURM integration tests: Snakemake + snakemake-executor-plugin-slurm against a real
single-node SLURM with 2 fake GPUs (see conftest.py, slurm_up.sh). Run with
`make test-cluster` (root only; deselected from `make test` by the `slurm` marker).

Both tests run with the user's profile profiles/slurm plus the test overlay
tests/cluster/profile, then ask slurmctld (`scontrol show job`, jobs stay visible for
MinJobAge=600 s) what was submitted: every non-local job went through SLURM and completed,
jobs of rule `train` asked for a GPU (TresPerJob=gres:gpu:1, from --gpus=1), no other job did.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

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
            assert job.fields["TimeLimit"] == "04:00:00"  # set-resources train: runtime 240
            assert job.fields["MinMemoryNode"] == "8000M"  # set-resources train: mem_mb 8000
        else:
            assert job.fields["NumCPUs"] == "2"  # cpus_per_task = threads (2)
            assert job.fields["MinMemoryNode"] == "2000M"  # default-resources mem_mb
            assert job.fields["TimeLimit"] == "00:30:00"  # default-resources runtime
        assert job.fields["Partition"] == slurm_cluster["partition"]
    assert seen_gpus, "no train job saw a GPU"


def test_real_workflow(slurm_cluster, tmp_path):
    """The repository's workflow on .test/config.yaml, through SLURM, in a scratch dir.

    Runs, with cwd = a temporary directory holding symlinks to the repo's config/ and .test/:
      snakemake --snakefile <repo>/Snakefile --configfile <repo>/.test/config.yaml \\
        --profile <repo>/profiles/slurm --profile <repo>/tests/cluster/profile \\
        --workflow-profile none
    so results/ and .snakemake/ are written in the temporary directory, not in the repo.
    """
    snakefile = REPO / "Snakefile"
    config = REPO / ".test" / "config.yaml"
    if not snakefile.exists():
        pytest.skip(f"{snakefile} does not exist yet")
    if not config.exists():
        pytest.skip(f"{config} does not exist yet")
    for name in ("config", ".test"):  # paths in the config are relative to the working dir
        if (REPO / name).exists():
            (tmp_path / name).symlink_to(REPO / name)
    args = ["--snakefile", str(snakefile), "--configfile", str(config)]

    proc = run_snakemake(tmp_path, args, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, diagnostics(tmp_path, output)
    assert re.search(r"(\d+) of \1 steps \(100%\) done", output), output[-3000:]
    check_slurm_jobs(tmp_path, output)

    # All targets exist and are up to date: a dry run has nothing left to do.
    dry = run_snakemake(tmp_path, [*args, "--dry-run"], timeout=120)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "Nothing to be done" in dry.stdout + dry.stderr, (dry.stdout + dry.stderr)[-3000:]
