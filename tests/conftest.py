import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MFAE = str(Path(sys.executable).with_name("mfae"))

# The suite plans with the built-in rates, whatever this machine's `mfae plan --calibrate` stored in
# ~/.config/mfae/rates.yaml (tests that need a calibration set MFAE_RATES themselves).
os.environ["MFAE_RATES"] = "none"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def mfae_bin() -> str:
    return MFAE
