"""Reading and writing the netCDF data products: provenance attrs and atomic writes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import xarray as xr

from . import MfaeError, __version__


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the source tree mfae runs from ("unknown" outside git; "+dirty" if modified)."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _attr_value(v: Any) -> Any:
    """netCDF attrs hold str/number/1-D arrays; everything else is stored as JSON text."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float, str, np.integer, np.floating)):
        return v
    if v is None:
        return "none"
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return np.asarray(v)
    return json.dumps(v, default=str)


def provenance(stage: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs recording every parameter of a stage, the package version and the git commit."""
    attrs = {f"param_{k}": _attr_value(v) for k, v in sorted(params.items())}
    attrs.update(stage=stage, mfae_version=__version__, git_commit=git_commit(),
                 parameters_json=json.dumps(dict(params), sort_keys=True, default=str))
    return attrs


def _host() -> str:
    """This machine's short name, safe inside a file name (no dots)."""
    import socket

    return "".join(c if c.isalnum() or c in "-_" else "-" for c in socket.gethostname().split(".")[0]) or "host"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove temp files of `path` (named `.{name}.{host}.{pid}.*` by `atomic_output`) left by
    writers on this host that no longer run (killed by SIGKILL, or the machine lost power)."""
    path = Path(path)
    prefix, host, removed = f".{path.name}.", _host(), []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for e in entries:
        if not e.name.startswith(prefix):
            continue
        parts = e.name[len(prefix):].split(".")
        if len(parts) < 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and not _pid_alive(pid):
            try:
                os.unlink(e.path)
                removed.append(Path(e.path))
            except OSError:
                pass
    return removed


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Yield a temp file name in `path`'s folder; on success move it into place atomically.

    The one way mfae writes an output: a crash or kill mid-write never leaves a partial file at
    `path` (the temp file is removed), and the result gets the usual (umask) permissions rather than
    mkstemp's owner-only ones. Temp files are named `.{name}.{host}.{pid}.XXXX{suffix}`; a writer
    killed outright (SIGKILL) cannot remove its own, so each write first removes those of writers
    that are gone (`remove_stale_temps`).
    """
    path = Path(path)
    if path.is_dir():
        raise MfaeError(f"cannot write {path}: it is a folder")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_host()}.{os.getpid()}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextmanager
def writing(path: str | os.PathLike, errors: tuple[type[BaseException], ...] = (OSError,)) -> Iterator[str]:
    """`atomic_output` whose failures of the kinds `errors` (disk full, read-only folder, ...) become one
    MfaeError naming `path` and the reason; nothing is left at `path`."""
    try:
        with atomic_output(path) as tmp:
            yield tmp
    except MfaeError:
        raise
    except errors as exc:
        raise MfaeError(f"cannot write {path}: {_why(exc, path)}") from None


def write_dataset(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write `ds` to `path` atomically (see `atomic_output`); any failure (disk full, read-only
    folder, an attribute netCDF cannot encode) is one MfaeError and leaves nothing at `path`."""
    with writing(path, (OSError, ValueError, TypeError, OverflowError, RuntimeError)) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4")
    return Path(path)


def _why(exc: BaseException, path: str | os.PathLike | None = None) -> str:
    """A one-line reason for a failed write, with the free space left when that may be the cause
    (netCDF/HDF5 report a full disk only as "HDF error")."""
    import shutil

    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
    if path is not None:
        try:
            free = shutil.disk_usage(Path(path).absolute().parent).free
            if free < 100 * 2**20:
                why += f" ({free / 2**20:.2f} MB free there: disk full?)"
        except OSError:
            pass
    return " ".join(why.split())


def write_csv(rows: Sequence[Mapping[str, Any]], fieldnames: Sequence[str], path: str | os.PathLike) -> Path:
    """Write dict rows as CSV atomically; keys outside `fieldnames` are left out."""
    with writing(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fieldnames), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return Path(path)


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write a text file atomically."""
    with writing(path) as tmp:
        Path(tmp).write_text(text)
    return Path(path)


def attr(ds: xr.Dataset, name: str, default: Any = None) -> Any:
    """An attribute as a plain Python value (netCDF returns numpy scalars), or `default` if absent."""
    v = ds.attrs.get(name, default)
    return v.item() if isinstance(v, np.generic) else v


def read_dataset(path: str | os.PathLike, kind: str = "dataset", require: tuple[str, ...] = ()) -> xr.Dataset:
    """Open a netCDF written by mfae, loading it into memory, with clear errors for bad input."""
    path = Path(path)
    if not path.exists():
        raise MfaeError(f"{kind} file not found: {path}")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            ds = ds.load()
    except Exception as exc:  # netCDF4 raises OSError/ValueError/RuntimeError variously
        raise MfaeError(f"{kind} file {path} is not a readable netCDF file ({type(exc).__name__}: {exc})") from None
    missing = [v for v in require if v not in ds.variables]
    if missing:
        raise MfaeError(f"{kind} file {path} lacks variable(s) {', '.join(missing)}; "
                        f"was it written by the right mfae stage?")
    return ds


def curves_dataset(times: np.ndarray, c: np.ndarray, gain: np.ndarray, risk: np.ndarray, q: np.ndarray,
                   p: np.ndarray, group_eigenvalue: np.ndarray, group_fraction: np.ndarray,
                   attrs: Mapping[str, Any]) -> xr.Dataset:
    """The (time, group) product shared by `meanfield` and `train` (docs/theory.md §6)."""
    return xr.Dataset(
        dict(
            c=(("time", "group"), c, dict(long_name="weight variance along the group's eigen-directions, c_k(t)", units="1")),
            gain=(("time", "group"), gain, dict(long_name="gain a_k(t) (fraction of the component reconstructed)", units="1")),
            risk=("time", risk, dict(long_name="reconstruction risk R(t) = 1/2 E||x - xhat||^2", units="1")),
            q=("time", q, dict(long_name="q = sum_k w_k s_k c_k", units="1")),
            p=("time", p, dict(long_name="p = sum_k w_k s_k (1 - a_k) c_k", units="1")),
        ),
        coords=dict(
            time=("time", times, dict(long_name="mean-field time t = k * eps", units="1")),
            group=np.arange(group_eigenvalue.size),
            group_eigenvalue=("group", group_eigenvalue, dict(long_name="group eigenvalue s_k", units="1")),
            group_fraction=("group", group_fraction, dict(long_name="fraction w_k of the d directions", units="1")),
        ),
        attrs=dict(attrs),
    )
