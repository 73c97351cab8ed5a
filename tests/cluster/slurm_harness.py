"""Helpers for the SLURM integration tests (`make test-cluster`): running Snakemake with
the SLURM profiles and reading back what slurmctld saw (`scontrol show job`)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STATE = Path(os.environ.get("MFAE_SLURM_STATE", "/tmp/mfae-slurm"))
PARTITION = os.environ.get("MFAE_SLURM_PARTITION", "debug")

# Profiles: the user's SLURM profile, then the test overlay (squeue status command, short
# first poll, kept logs, partition). No other profile is loaded: the local one is profiles/local,
# which Snakemake does not pick up by itself.
PROFILE_ARGS = [
    "--profile", str(REPO / "profiles" / "slurm"),
    "--profile", str(HERE / "profile"),
]


def _venv_bin() -> Path:
    """bin/ of the venv running the tests (snakemake and mfae live there)."""
    return Path(sys.executable).parent


def snakemake_exe() -> str:
    exe = _venv_bin() / "snakemake"
    if exe.exists():
        return str(exe)
    found = shutil.which("snakemake")
    if not found:
        pytest.fail("snakemake not found next to the test's Python nor on PATH")
    return found


def job_env() -> dict[str, str]:
    """Environment for Snakemake; sbatch --export=ALL hands it on to the jobs."""
    env = dict(os.environ)
    env["PATH"] = f"{_venv_bin()}{os.pathsep}{env.get('PATH', '')}"
    env.pop("SLURM_CONF", None)  # the cluster's config is /etc/slurm/slurm.conf
    return env


@dataclass
class SlurmJob:
    """One job as `scontrol show job -o` reports it (kept 10 min after it ended: MinJobAge)."""

    fields: dict[str, str]

    @property
    def id(self) -> str:
        return self.fields["JobId"]

    @property
    def state(self) -> str:
        return self.fields.get("JobState", "")

    @property
    def exit_code(self) -> str:
        return self.fields.get("ExitCode", "")

    @property
    def rule(self) -> str:
        """Rule name from the plugin's --comment `rule_<name>[_wildcards_<...>]`."""
        m = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", self.fields.get("Comment", ""))
        return m.group(1) if m else ""

    @property
    def gpu_request(self) -> str:
        """The GPU part of the request: TresPerJob/TresPerNode/TresPerTask (e.g. gres:gpu:1)."""
        return ",".join(
            v for k, v in self.fields.items()
            if k.startswith("TresPer") and "gpu" in v
        )


_FIELD = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z/:_]*)=(\S*)")


def slurm_jobs(workdir: Path | None = None) -> list[SlurmJob]:
    """All jobs slurmctld knows about, optionally only those with this working dir."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o"],
        capture_output=True, text=True, timeout=30, env=job_env(),
    )
    assert out.returncode == 0, f"scontrol show job failed: {out.stderr}"
    jobs = []
    for line in out.stdout.splitlines():
        if not line.startswith("JobId="):
            continue
        job = SlurmJob(dict(_FIELD.findall(line)))
        if workdir is None or os.path.realpath(job.fields.get("WorkDir", "")) == os.path.realpath(workdir):
            jobs.append(job)
    return jobs


def diagnostics(workdir: Path, output: str = "") -> str:
    """Text for a failure message: Snakemake's output, SLURM job logs, slurmctld log."""
    parts = []
    if output:
        parts.append("--- snakemake output (tail)\n" + output[-6000:])
    for log in sorted((workdir / ".snakemake" / "slurm_logs").rglob("*.log"))[-6:]:
        parts.append(f"--- {log}\n" + log.read_text(errors="replace")[-2000:])
    for name in ("slurmctld.log", "slurmd.log"):
        log = STATE / "log" / name
        if log.exists():
            parts.append(f"--- {log} (tail)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-25:]))
    try:
        parts.append("--- scontrol show job -o\n" + "\n".join(j.fields.get("JobId", "") + " " + j.state + " " + j.fields.get("Comment", "") for j in slurm_jobs(workdir)))
    except Exception as exc:  # noqa: BLE001 - diagnostics only
        parts.append(f"(scontrol failed: {exc})")
    return "\n".join(parts)


def run_snakemake(workdir: Path, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    cmd = [snakemake_exe(), *args, *PROFILE_ARGS]
    try:
        return subprocess.run(
            cmd, cwd=workdir, env=job_env(), capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"snakemake timed out after {timeout}s: {' '.join(cmd)}\n" + diagnostics(workdir, out + err))
