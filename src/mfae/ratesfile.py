"""The calibration file of the cost model: where `mfae plan --calibrate` stores this machine's rates, and
how `mfae.traincost.rates` applies them. A leaf module (no import of mfae.traincost), so the cost model and the
calibration can both use it (mfae.calibrate says how the rates are measured).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any

from . import MfaeError

RATES_ENV = "MFAE_RATES"
# fields of mfae.traincost.Rates a calibration sets (host_extra_mb and read_rate keep their reference values)
FITTED = ("startup", "step_flops", "step_overhead", "step_act", "measure_flops", "measure_act", "bandwidth",
          "host_flops")


def rates_path() -> Path | None:
    """The calibration file: $MFAE_RATES (`none` or empty: no file), else $XDG_CONFIG_HOME/mfae/rates.yaml."""
    value = os.environ.get(RATES_ENV)
    if value is not None:
        return None if value.strip().lower() in ("", "none") else Path(value).expanduser()
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "mfae" / "rates.yaml"


def stored(path: Path | None = None) -> dict[str, Any]:
    """The calibration file's content by device ({} when there is none). A file named by $MFAE_RATES must
    exist; the default one is optional."""
    path = rates_path() if path is None else path
    if path is None:
        return {}
    try:
        mtime = path.stat().st_mtime_ns
    except FileNotFoundError:
        if os.environ.get(RATES_ENV):
            raise MfaeError(f"{RATES_ENV}={path}: no such calibration file (write it with `mfae plan --calibrate`, "
                            f"or set {RATES_ENV}=none for the built-in rates)") from None
        return {}
    return _read(path.resolve(), mtime)


@functools.lru_cache(maxsize=8)
def _read(path: Path, mtime_ns: int) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise MfaeError(f"cannot read the calibration file {path}: {exc}") from None
    for device, entry in data.items():
        r = entry.get("rates") if isinstance(entry, dict) else None
        if not isinstance(r, dict) or not all(isinstance(r.get(k), (int, float)) and r[k] > 0 for k in FITTED):
            raise MfaeError(f"calibration file {path}: {device}.rates must give {', '.join(FITTED)} (numbers > 0); "
                            "rewrite it with `mfae plan --calibrate`")
    return data


def apply(ref, device: str, path: Path | None = None):
    """`ref` (mfae.traincost.Rates) with the stored calibration of `device` applied, if there is one."""
    entry = stored(path).get(device)
    if not entry:
        return ref
    return dataclasses.replace(ref, name=f"{device} (calibrated)", **{k: float(entry["rates"][k]) for k in FITTED})


def describe(device: str) -> str:
    """One line: which rates `mfae plan` uses for `device`."""
    path = rates_path()
    entry = stored().get(device)
    if not entry:
        where = f"no {device} section in {path}" if path and path.exists() else (
            f"{RATES_ENV}=none" if path is None else f"no {path}")
        return f"rates for {device}: built-in reference ({where}; `mfae plan --calibrate` measures this machine)"
    m = entry.get("measured_on", {})
    return f"rates for {device}: calibrated on {m.get('host', '?')} at {m.get('date', '?')} ({path})"


def reread() -> None:
    """Forget the cached file contents (after writing the file)."""
    _read.cache_clear()
