"""mfae: mean-field analysis of weight-tied autoencoders (Nguyen, 2021), as a reproducible pipeline."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("mfae")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"


class MfaeError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits with status 2."""
