"""mfae: mean-field analysis of weight-tied autoencoders (Nguyen, 2021), as a reproducible pipeline."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:
    __version__ = _version("mfae")
except PackageNotFoundError:  # running from a source tree (e.g. the workflow's conda envs)
    import re
    from pathlib import Path

    _pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    _m = re.search(r'^version = "([^"]+)"', _pyproject.read_text(), re.M) if _pyproject.exists() else None
    __version__ = (_m.group(1) + "+src") if _m else "0.0.0+unknown"


class MfaeError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with status 2."""
