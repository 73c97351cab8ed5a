"""Reading and checking a study config: YAML files read with duplicate keys refused, merged as
Snakemake merges them, then checked beyond what the JSON schema (workflow/schemas/config.schema.yaml)
can express. Each check raises ConfigError whose message starts with the offending key.

The checks use the experiment grid of mfae.study (which does not import this module).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable

import yaml

from mfae import MfaeError
from mfae.constants import IDX_SOURCES, IDX_STEMS, REAL_SOURCES, SIZE_MAX
from mfae.layout import fmt
from mfae.runconfig import n_steps
from mfae.study import (
    FIGURES,
    INTRINSIC_EXPERIMENTS,
    dkeys,
    experiment,
    experiments,
    fetch_folder,
    figure_experiments,
    n_values,
    section,
)


class ConfigError(MfaeError):
    """An invalid study config; the message starts with the offending key (experiments.phases.d: ...)."""


def _check_unique_keys(node: yaml.Node, key: str = "") -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for k, v in node.value:
            name = f"{key}.{k.value}" if key else str(k.value)
            line = k.start_mark.line + 1
            if k.value in seen:
                raise ConfigError(f"{name}: duplicate key (lines {seen[k.value]} and {line} of {k.start_mark.name}); "
                                  "YAML would silently keep only the last one")
            seen[k.value] = line
            _check_unique_keys(v, name)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _check_unique_keys(v, f"{key}[{i}]")


def read_yaml(path: str | Path) -> Any:
    """A YAML file; a key given twice in one mapping raises ConfigError naming its full key and
    lines (plain YAML loaders, Snakemake's too, silently keep the last value)."""
    with open(path) as f:
        node = yaml.compose(f, Loader=yaml.SafeLoader)
    if node is not None:
        _check_unique_keys(node)
    with open(path) as f:
        return yaml.safe_load(f)


SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"


def schema_path() -> Path:
    """The config schema of this checkout (workflow/schemas/config.schema.yaml beside src/), else of the
    current folder (a repository root)."""
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (root / SCHEMA).is_file():
            return root / SCHEMA
    raise MfaeError(f"config schema {SCHEMA} not found: run from the repository root")


def _key(path: Iterable[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def validate_schema(config: dict, schema: str | Path | None = None) -> None:
    """The JSON schema's checks (types, ranges, unknown keys), raising one ConfigError that starts with
    the offending key: `experiments.phases.N[0]: -5 is less than the minimum of 1`."""
    import jsonschema

    with open(schema or schema_path()) as f:
        sch = yaml.safe_load(f)
    errors = sorted(jsonschema.Draft202012Validator(sch).iter_errors(config),
                    key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if not errors:
        return
    err = jsonschema.exceptions.best_match(errors)
    key = _key(err.absolute_path)
    if err.validator == "additionalProperties":  # name the unknown key itself, and what is allowed
        known = sorted(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(known))
        key = ".".join(x for x in (key, str(extra[0])) if x)
        raise ConfigError(f"{key}: unknown key (allowed here: {', '.join(known)})")
    raise ConfigError(f"{key or 'config'}: {err.message}")


def load_config(*paths: str | Path, check_paths: bool = True) -> dict:
    """Config files merged as Snakemake merges them (later files override, recursively), then
    checked as the workflow checks them: the JSON schema, then check_config."""
    config: dict = {}
    for p in paths:
        _merge(config, read_yaml(p) or {})
    validate_schema(config)
    check_config(config, check_paths=check_paths)
    return config


def _merge(a: dict, b: dict) -> None:
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(a.get(k), dict):
            _merge(a[k], v)
        else:
            a[k] = v


def _nonfinite(node: Any, key: str) -> Iterable[str]:
    if isinstance(node, float) and not math.isfinite(node):
        yield key
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from _nonfinite(v, f"{key}.{k}" if key else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _nonfinite(v, f"{key}[{i}]")


def check_config(config: dict, check_paths: bool = True) -> None:
    """Checks beyond the schema; raises ConfigError whose message starts with the offending key.
    check_paths=False skips checking that user-provided data files exist (planning ahead)."""
    for key in _nonfinite(config, ""):
        raise ConfigError(f"{key}: must be a finite number (NaN and infinity are not allowed)")
    if not experiments(config):
        raise ConfigError("experiments: no experiment is enabled; enable at least one (enabled: true)")
    for name, e in experiments(config).items():
        _check_experiment(f"experiments.{name}", e, check_paths)
    fetched: dict[str, tuple[str, str]] = {}
    for name, e in experiments(config).items():
        if e["data"]["fetch"]:
            folder, src = fetch_folder(e["data"]["path"]), e["data"]["source"]
            other = fetched.setdefault(folder, (name, src))
            if other[1] != src:
                raise ConfigError(f"experiments.{name}.data.path: {folder} is also where experiments.{other[0]} "
                                  f"fetches {other[1]}; give each data set its own folder")
    for name, e in experiments(config).items():
        for n in (n for k in dkeys(config, name) for n in n_values(config, name, k)):
            if n > SIZE_MAX:
                which = "N_over_r" if "N_over_r" in e else "N_over_d"
                raise ConfigError(f"experiments.{name}.{which}: gives N = {n}, above {SIZE_MAX}")
    for name, e in experiments(config).items():
        _check_variants(f"experiments.{name}", name, e, config)
    n_times = section(config, "train")["n_times"]
    for name, e in experiments(config).items():
        ds = e.get("d") or ([64] if e["data"]["source"] == "digits" else [])  # real data: d known for digits
        for d in ds:
            steps = n_steps(e["t_max"], d, e["lr"])
            if n_times > steps + 1:
                raise ConfigError(f"train.n_times: {n_times} measurements exceed the {steps} steps (+1) of "
                                  f"experiments.{name} at d = {d} (t_max = {fmt(e['t_max'])}, lr = {fmt(e['lr'])})")
    figures = section(config, "figures")
    for stem, fig in FIGURES.items():
        for x in figure_experiments(config, stem) if fig.times else []:
            t_max, late = experiment(config, x)["t_max"], max(figures[fig.times])
            if late > t_max:
                raise ConfigError(f"figures.{fig.times}: time {fmt(late)} is after the end of experiments.{x} "
                                  f"(t_max = {fmt(t_max)}), which {stem} shows")


def _check_variants(key: str, name: str, e: dict, config: dict) -> None:
    """A variant study (data.variants; docs/convergence.md): only the intrinsic_* experiments, one model
    (each variant gets one convergence fit), at least 3 N, embeddings no narrower than their rank, and a
    reference that is an enabled rank sweep."""
    from mfae.study import parse_variant

    variants = e["data"].get("variants")
    if name in INTRINSIC_EXPERIMENTS and not variants:
        raise ConfigError(f"{key}.data.variants: required (e.g. [real, twin, pca8, pca8_d32])")
    if not variants:
        if "reference" in e:
            raise ConfigError(f"{key}.reference: only for experiments with data.variants")
        return
    if name not in INTRINSIC_EXPERIMENTS:
        raise ConfigError(f"{key}.data.variants: only for {', '.join(INTRINSIC_EXPERIMENTS)}")
    if len(e["activations"]) != 1 or len(e["lams"]) != 1:
        raise ConfigError(f"{key}.activations: a variant study fits one model per variant: give one activation "
                          f"and one lambda (lams)")
    if len(e["N"]) < 3:
        raise ConfigError(f"{key}.N: a variant's fit needs at least 3 values of N, got {len(e['N'])}")
    for v in variants:
        p = parse_variant(v)
        if p["embed_d"] and p["embed_d"] < p["pca_rank"]:
            raise ConfigError(f"{key}.data.variants: {v} embeds {p['pca_rank']} components in R^{p['embed_d']}; "
                              f"D must be at least the rank")
    ref = e.get("reference")
    if ref is not None:
        if ref not in experiments(config) or "ranks" not in experiment(config, ref)["data"]:
            raise ConfigError(f"{key}.reference: {ref} is not an enabled rank sweep (lowrank data with ranks)")


def _check_experiment(key: str, e: dict, check_paths: bool) -> None:
    data, src = e["data"], e["data"]["source"]
    if data["fetch"] and src not in IDX_SOURCES:
        raise ConfigError(f"{key}.data.fetch: only {' and '.join(IDX_SOURCES)} data can be fetched, not {src}")
    if src in REAL_SOURCES:
        if "N" not in e:
            raise ConfigError(f"{key}.N: real-data experiments need a list of N")
        if src in (*IDX_SOURCES, "array"):
            path = data.get("path")
            if not path:
                raise ConfigError(f"{key}.data.path: required for source {src}")
            if check_paths and not data["fetch"] and not Path(path).exists():
                how = (f"Set {key}.data.fetch: true to download the four IDX files there (checksums verified; "
                       f"needs the internet, or a mirror in {key}.data.mirrors), or place the files "
                       f"({', '.join(s + '.gz' for s in IDX_STEMS)}; `mfae data fetch {src} --dest {path}` on a machine with "
                       f"the internet, or Debian's dataset-fashion-mnist for fashion-mnist) in that folder yourself, "
                       f"or set {key}.enabled: false."
                       if src in IDX_SOURCES else "Point it at an existing .npy or .csv file.")
                raise ConfigError(f"{key}.data.path: {path} does not exist. {how}")
        return
    if "d" not in e:
        raise ConfigError(f"{key}.d: required for source {src}")
    if sum(k in e for k in ("N", "N_over_d", "N_over_r")) != 1:
        raise ConfigError(f"{key}: give exactly one of N, N_over_d or N_over_r")
    if "N_over_r" in e and "ranks" not in data:
        raise ConfigError(f"{key}.N_over_r: only for a rank sweep (lowrank data with ranks)")
    if "ranks" in data and src != "lowrank":
        raise ConfigError(f"{key}.data.ranks: only for lowrank data")
    if src == "gaussian":
        if "eigenvalues" not in data or "fractions" not in data:
            raise ConfigError(f"{key}.data: gaussian data needs eigenvalues and fractions")
        if len(data["eigenvalues"]) != len(data["fractions"]):
            raise ConfigError(f"{key}.data.fractions: one fraction per eigenvalue is needed")
        if not any(s > 0 for s in data["eigenvalues"]):
            raise ConfigError(f"{key}.data.eigenvalues: all zero; the data need some variance")
        from mfae.spectrum import group_sizes  # numpy: only for gaussian experiments

        for d in e["d"]:
            try:
                group_sizes(data["fractions"], d)
            except MfaeError as exc:
                raise ConfigError(f"{key}.d: {exc}") from None
    elif src == "lowrank":
        if ("rank" in data) == ("ranks" in data):
            raise ConfigError(f"{key}.data.rank: lowrank data need exactly one of rank or ranks (a rank sweep)")
        if "ranks" in data and len(e["d"]) != 1:
            raise ConfigError(f"{key}.d: a rank sweep (data.ranks) runs at a single d, got {len(e['d'])}")
        for r in data.get("ranks", [data.get("rank")]):
            for d in e["d"]:
                if not r < d:
                    raise ConfigError(f"{key}.d: every d must exceed the rank, got d = {d} and rank {r}")
