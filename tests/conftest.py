import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MFAE = str(Path(sys.executable).with_name("mfae"))


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def mfae_bin() -> str:
    return MFAE
