"""README's numbers and commands are the code's: the cost table is what `mfae plan --table-row` prints, and
every command of README's code blocks starts as written (a dry run is not enough: Snakemake accepts -n
without --cores and refuses the real run).

The commands run in a copy of the repository's tracked files (this checkout's .venv linked in, as after
`make install`; the venv's tools first on PATH, as after `source .venv/bin/activate`). A long one counts
as started once Snakemake has built its DAG and prints its `Job stats:` table (it is then stopped), or
once it has run for START_SECONDS; a short one must finish with status 0. Where a command cannot succeed
here, what it must say instead is stated with the reason (no GPU, no SLURM, no finished study)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mfae import plan, smoke
from mfae.config import load_config

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
START_SECONDS = 15

# Commands that cannot be run by a test, and why (each is exercised elsewhere).
NOT_RUN = {
    "git clone": "a placeholder for the user's clone; CI itself runs from a fresh clone",
    "srun ": "needs SLURM: tests/cluster/test_slurm.py runs these steps on a real SLURM (make test-cluster)",
}
# What a command must print instead of succeeding here, and why.
EXPECTED_FAILURE = {
    "make gpu-check": ("no CUDA device visible", "no GPU on this machine: it must stop at once, in one line"),
    "--report": ("marked for report but does not exist",
                 "no finished study here: the report of one is built by test_workflow and make test-cluster"),
    "--profile profiles/slurm --configfile config/paper.yaml": (
        "Job submission failed", "no SLURM here: it builds the DAG and then fails to submit"),
}


def code_blocks(text: str) -> list[str]:
    """The fenced blocks without a language (README's shell blocks; ```text marks the others), indentation
    removed."""
    out = []
    for lang, body in re.findall(r"^ *```(\w*)\n(.*?)^ *```$", text, re.S | re.M):
        if not lang:
            out.append(re.sub(r"^ {0,3}", "", body, flags=re.M))
    return out


def commands(text: str) -> list[str]:
    """Every command line of the shell blocks: comments dropped, continuation lines joined."""
    out = []
    for block in code_blocks(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(" ".join(line.split()))
    return out


def test_readme_lists_the_commands_a_user_types():
    cmds = commands(README)
    assert cmds[:2] == ["make all", "make test"]  # README starts with exactly these two
    for want in ("snakemake --profile profiles/local", "make gpu-check", "mfae plan --configfile config/paper.yaml "
                 "--profile profiles/slurm --out plan.csv"):
        assert any(want in c for c in cmds), want


@pytest.mark.parametrize("row", re.findall(r"^\| (config[^| ]*\.yaml) \|.*\|$", README, re.M))
def test_the_cost_table_is_what_mfae_plan_prints(row, monkeypatch):
    monkeypatch.setenv("MFAE_RATES", "none")
    files = [ROOT / "config.yaml"] + ([ROOT / row] if row != "config.yaml" else [])
    config = smoke.smoke_config(load_config(*files, check_paths=False))
    line = plan.summary_row(config, row)
    assert line in README.splitlines(), f"README's row for {row} is not what `mfae plan --table-row` prints:\n{line}"


# --- every command starts ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    """The tracked files (modification times kept, so make sees the venv as up to date) and this .venv."""
    if subprocess.run(["make", "-q", "install"], cwd=ROOT).returncode != 0:
        pytest.skip("this checkout's .venv is not up to date with pyproject.toml/constraints.txt: run make install")
    dest = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, dest / name)
    (dest / ".venv").symlink_to(ROOT / ".venv")
    # what README's command-line examples read: DIR (four IDX files) and X.npy
    if (DEBIAN / "train-images-idx3-ubyte.gz").exists():
        (dest / "DIR").mkdir()
        for f in DEBIAN.glob("*-ubyte.gz"):
            (dest / "DIR" / f.name).symlink_to(f)
    np.save(dest / "X.npy", np.random.default_rng(0).standard_normal((300, 20)) @ np.diag(np.linspace(2, 0.1, 20)))
    return dest


def runs_a_study(cmd: str) -> bool:
    """A command that may run (part of) a study: it counts as started once Snakemake prints `Job stats:`
    (not a dry run, not a report, which must finish)."""
    words = cmd.split()
    return words[0] in ("make", "snakemake") and "-n" not in words and "--report" not in words and cmd != "make test"


def start(cmd: str, cwd: Path) -> tuple[int | None, str]:
    """Run `cmd` in bash until it exits or has started (module docstring); (exit status or None, output)."""
    env = {**os.environ, "PATH": f"{cwd / '.venv' / 'bin'}:{os.environ['PATH']}", "VIRTUAL_ENV": str(cwd / ".venv"),
           "PYTHONUNBUFFERED": "1"}  # Snakemake's `Job stats:` reaches the log when printed
    env.pop("MFAE_RATES", None)
    log = cwd / "command.log"
    limit = START_SECONDS if cmd == "make test" else 600  # the test suite itself: started once it runs
    with open(log, "w") as out:
        p = subprocess.Popen(["bash", "-c", cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                             start_new_session=True)
        t0 = time.monotonic()
        while p.poll() is None and time.monotonic() - t0 < limit:
            if runs_a_study(cmd) and "Job stats:" in log.read_text(errors="replace"):
                break
            time.sleep(0.5)
        rc = p.poll()
        if rc is None:  # started: stop it and everything it started
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    return rc, log.read_text(errors="replace")


README_COMMANDS = commands(README)


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("cmd", README_COMMANDS)
def test_every_readme_command_starts(clone, cmd):
    skip = next((why for key, why in NOT_RUN.items() if cmd.startswith(key)), None)
    if skip:
        pytest.skip(f"{cmd}: {skip}")
    if ("DIR" in cmd.split() or "images" in cmd or "paper-smoke" in cmd) and not (clone / "DIR").exists() \
            and not (DEBIAN / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"{cmd}: needs Debian's Fashion-MNIST in {DEBIAN} (make test-data)")
    rc, out = start(cmd, clone)
    expected = next((v for key, v in EXPECTED_FAILURE.items() if key in cmd), None)
    if expected and rc not in (None, 0):
        assert expected[0] in out, f"{cmd} ({expected[1]}) exited {rc}:\n{out[-3000:]}"
        return
    assert rc in (None, 0), f"{cmd} exited {rc}:\n{out[-3000:]}"
    if rc is None:  # stopped: it had started (a study's DAG built), or it is the test suite, still running
        assert "Job stats:" in out or cmd == "make test", out[-3000:]
