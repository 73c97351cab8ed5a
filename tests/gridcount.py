"""How many training runs a study config asks for, counted from the config itself, without mfae: for each
enabled experiment, activations x lambdas x seeds x the number of N values summed over its data files (one
per d, one per (d, rank) of a rank sweep, one for real data), with the schema's defaults where a key is
absent. Tests compare the grid (mfae.study, the workflow) with this count instead of pinning the count of
a shipped config, which a config edit changes without any change in behaviour."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
_EXPERIMENT = _SCHEMA["$defs"]["experiment"]["properties"]


def _get(e: dict, key: str):
    return e[key] if key in e else _EXPERIMENT[key]["default"]


def _n_count(e: dict, d: int | None, rank: int | None) -> int:
    """Distinct N of one data file: the N list, or N = round(ratio * d) / round(ratio * rank), at least 1
    (the schema's definitions of N_over_d and N_over_r)."""
    if "N_over_d" in e:
        return len({max(1, round(x * d)) for x in e["N_over_d"]})
    if "N_over_r" in e:
        return len({max(1, round(x * rank)) for x in e["N_over_r"]})
    return len(e["N"])


def count_runs(config: dict) -> int:
    total = 0
    for e in (config.get("experiments") or {}).values():
        if not _get(e, "enabled"):
            continue
        data = e["data"]
        if data["source"] not in ("gaussian", "lowrank"):
            files = [(None, None)]  # real data: one file
        elif "ranks" in data:
            files = [(d, r) for d in e["d"] for r in data["ranks"]]
        else:
            files = [(d, data.get("rank")) for d in e["d"]]
        models = len(_get(e, "activations")) * len(_get(e, "lams")) * len(_get(e, "seeds"))
        total += models * sum(_n_count(e, d, r) for d, r in files)
    return total
