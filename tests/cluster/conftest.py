"""Fixtures for the SLURM integration tests (`make test-cluster`).

The session fixture `slurm_cluster` starts a real single-node SLURM with slurm_up.sh
(installs Debian's slurm packages if missing, writes /etc/slurm/{slurm,gres}.conf after
backing up existing files, starts munged, slurmctld and slurmd) and always stops it with
slurm_down.sh, which restores /etc/slurm. Needs root.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from slurm_harness import HERE, PARTITION, STATE


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM (node `hostname -s`, 2 fake GPUs); torn down at the end."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (it installs packages, writes /etc/slurm "
                    "and starts munged/slurmctld/slurmd): run `make test-cluster` as root")
    if not (shutil.which("slurmctld") or shutil.which("apt-get")):
        pytest.skip("SLURM is not installed and there is no apt-get to install it (Debian/Ubuntu only)")
    env = dict(os.environ, MFAE_SLURM_STATE=str(STATE), MFAE_SLURM_PARTITION=PARTITION)
    try:
        up = subprocess.run(
            [str(HERE / "slurm_up.sh")], env=env, capture_output=True, text=True, timeout=600,
        )
        if up.returncode != 0:
            pytest.fail(f"slurm_up.sh failed (exit {up.returncode}):\n{up.stdout}\n{up.stderr}")
        enforced = STATE / "memory_enforced"
        yield {"host": os.uname().nodename.split(".")[0], "partition": PARTITION, "state": STATE,
               "memory_enforced": enforced.read_text().strip() if enforced.exists() else "no: not probed"}
    finally:
        subprocess.run([str(HERE / "slurm_down.sh")], env=env, timeout=180)
