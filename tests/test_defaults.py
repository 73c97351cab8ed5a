"""The defaults agree everywhere they are stated: the config schema (what Snakemake fills in), mfae.defaults
(what mfae.study fills in for a config read straight from YAML), TrainConfig (one SGD run) and the `mfae`
command line. The one intended difference (mfae.defaults.CLI_SHRINKAGE_TIMES) is checked with its reason."""

import dataclasses
from pathlib import Path

import yaml

from mfae import defaults, study
from mfae.cli import build_parser
from mfae.runconfig import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
EXP_SCHEMA = SCHEMA["$defs"]["experiment"]


def schema_defaults(node: dict) -> dict:
    return {k: v["default"] for k, v in node["properties"].items() if "default" in v and v["default"] != {}}


def test_the_schema_states_the_same_defaults():
    assert schema_defaults(EXP_SCHEMA) == defaults.EXPERIMENT
    assert schema_defaults(EXP_SCHEMA["properties"]["data"]) == defaults.DATA
    assert SCHEMA["properties"]["results"]["default"] == defaults.RESULTS
    sections = {k for k, v in SCHEMA["properties"].items() if v.get("type") == "object" and k != "experiments"}
    assert sections == set(defaults.SECTIONS)
    for name in sections:
        assert schema_defaults(SCHEMA["properties"][name]) == defaults.SECTIONS[name], name


def test_study_fills_in_the_schema_defaults():
    config = {"experiments": {"phases": {"data": {"source": "gaussian"}}}}
    e = study.experiment(config, "phases")
    assert {k: e[k] for k in schema_defaults(EXP_SCHEMA)} == schema_defaults(EXP_SCHEMA)
    assert {k: e["data"][k] for k in schema_defaults(EXP_SCHEMA["properties"]["data"])} == \
        schema_defaults(EXP_SCHEMA["properties"]["data"])
    for name in ("train", "meanfield", "figures", "smoke"):
        assert study.section(config, name) == schema_defaults(SCHEMA["properties"][name])
    assert study.results(config) == SCHEMA["properties"]["results"]["default"]


def test_a_run_defaults_to_the_configs_first_model():
    """TrainConfig's defaults: the schema's experiment and train settings (first activation, lambda and
    seed of the lists), the rest from mfae.defaults.RUN."""
    cfg = TrainConfig(N=1)
    exp, train = schema_defaults(EXP_SCHEMA), schema_defaults(SCHEMA["properties"]["train"])
    assert (cfg.activation, cfg.lam, cfg.seed) == (exp["activations"][0], exp["lams"][0], exp["seeds"][0])
    assert (cfg.r0, cfg.lr, cfg.t_max) == (exp["r0"], exp["lr"], exp["t_max"])
    assert (cfg.batch, cfg.n_times, cfg.n_test, cfg.dtype) == (train["batch"], train["n_times"], train["n_test"],
                                                                  train["dtype"])
    assert {k: getattr(cfg, k) for k in defaults.RUN} == defaults.RUN
    assert cfg.validate() == cfg


def parse(*argv):
    return vars(build_parser().parse_args([str(a) for a in argv]))


def test_the_command_line_defaults_are_the_configs():
    exp, data = schema_defaults(EXP_SCHEMA), schema_defaults(EXP_SCHEMA["properties"]["data"])
    train, figures = schema_defaults(SCHEMA["properties"]["train"]), schema_defaults(SCHEMA["properties"]["figures"])

    a = parse("train", "--data", "d.nc", "--N", 4, "--out", "o.nc")
    assert (a["activation"], a["lam"], a["seed"]) == (exp["activations"][0], exp["lams"][0], exp["seeds"][:1])
    assert (a["r0"], a["lr"], a["t_max"]) == (exp["r0"], exp["lr"], exp["t_max"])
    for key in ("batch", "n_times", "n_test", "dtype", "device", "checkpoint_seconds"):
        assert a[key] == train[key], key
    run = TrainConfig(N=4)  # the flags the config does not set: TrainConfig's defaults
    assert (a["block_steps"], a["diverge_risk"], a["tf32"]) == (run.block_steps, run.diverge_risk, run.tf32)

    m = parse("meanfield", "--data", "d.nc", "--out", "m.nc")
    assert (m["activation"], m["lam"], m["r0"], m["t_max"]) == (exp["activations"], exp["lams"], exp["r0"],
                                                                 exp["t_max"])
    assert m["n_times"] == schema_defaults(SCHEMA["properties"]["meanfield"])["n_times"]

    c = parse("convergence", "--train", "t.nc", "--meanfield", "m.nc", "--out", "c.nc")
    assert c["n_boot"] == exp["n_boot"] and set(c["tol"].values()) == {exp["tol"]}

    g = parse("data", "gaussian", "--eigenvalues", 1, "--fractions", 1, "--d", 4, "--out", "d.nc")
    assert g["seed"] == data["seed"] and g["rotate"] == data["rotate"]
    r = parse("data", "digits", "--out", "d.nc")
    for key in ("seed", "test_fraction", "max_samples", "max_test"):
        assert r[key] == data[key], key
    assert parse("data", "fetch", "mnist", "--dest", "x")["mirror"] == data["mirrors"]

    f = parse("figures", "realdata", "--data", "d.nc", "--train", "t.nc", "--meanfield", "m.nc", "--out", "f.png")
    assert (f["times"], f["n_images"]) == (figures["realdata_times"], figures["n_images"])
    f = parse("figures", "projections", "--train", "t.nc", "--meanfield", "m.nc", "--out", "f.png")
    assert f["times"] == figures["projection_times"]


def test_the_one_command_line_default_that_differs_and_why():
    """`mfae figures shrinkage` plots any runs: its default times lie within the default t_max, while the
    config's default shrinkage_times end at the shipped shrinkage experiment's t_max."""
    f = parse("figures", "shrinkage", "--train", "t.nc", "--meanfield", "m.nc", "--out", "f.png")
    exp = schema_defaults(EXP_SCHEMA)
    assert f["activation"] == exp["activations"][0]
    assert max(f["times"]) <= exp["t_max"]
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text())
    config_times = schema_defaults(SCHEMA["properties"]["figures"])["shrinkage_times"]
    assert max(config_times) > exp["t_max"]  # the reason: the config's default would not fit a default run
    assert max(config_times) <= shipped["experiments"]["shrinkage"]["t_max"]
    assert f["times"] == [t for t in config_times if t <= exp["t_max"]] + [exp["t_max"]]


def test_every_run_parameter_has_a_default_but_N():
    no_default = [f.name for f in dataclasses.fields(TrainConfig) if f.default is dataclasses.MISSING]
    assert no_default == ["N"]
