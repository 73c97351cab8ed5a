"""Every conda env file in envs/ is enough for the rules that use it (`snakemake --sdm conda`).

For a tiny study that has a job of every rule, the test takes each job's shell command from a
Snakemake dry run, runs every job once in this process (fast: the inputs of the next), then reruns
one job of each rule (and of each `mfae data` source) as its own process in which only the packages
its rule's env file lists, their dependencies (resolved with importlib.metadata, as conda or pip would
install them) and the standard library can be imported (tests/envguard.py blocks everything else).
A job that needs a package its env lacks fails there with `No module named 'yaml' (blocked: ...)`,
and the test names the package.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shlex
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
GUARD = Path(__file__).resolve().with_name("envguard.py")
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
DEBIAN = Path("/usr/share/datasets/fashion-mnist")
IDX = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
       "t10k-labels-idx1-ubyte.gz")
NOT_PYTHON = {"python", "pip"}  # conda packages that are no Python distribution
CONDA_TO_PYPI = {"matplotlib-base": "matplotlib"}  # conda-forge names that differ from the distribution's


# --- env files -> importable modules ---------------------------------------------------------------

def rule_envs() -> dict[str, str]:
    """Rule name -> its `conda:` env file (relative to the repository), from workflow/rules/*.smk. Rules
    made in a loop under a computed name (`rule: name: f"meanfield_{exp}"`, the train batches'
    `batch.name`) appear as their name's prefix and `*` (meanfield_*, and train_* after their file)."""
    out = {}
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        starts = list(re.finditer(r"^(\s*)rule( \w+)?:$", text, re.M))
        for m, nxt in zip(starts, [*starts[1:], None]):
            block = text[m.end():nxt.start() if nxt else len(text)]
            name = m.group(2).strip() if m.group(2) else None
            if name is None:
                expr = re.search(r"^\s+name:\n\s+(.+)$", block, re.M).group(1)
                literal = re.fullmatch(r"f?\"(\w*)(\{.*)?\"", expr)
                name = (literal.group(1) if literal else f"{smk.stem}_") + ("*" if not literal or literal.group(2) else "")
            env = re.search(r"^\s+conda:\n\s+\"([^\"]+)\"", block, re.M)
            out[name] = (smk.parent / env.group(1)).resolve().relative_to(ROOT).as_posix() if env else None
    return out


def rule_key(rule: str, envs: dict[str, str]) -> str:
    """The key of a job's rule in rule_envs (a generated rule: its prefix*)."""
    if rule in envs:
        return rule
    keys = [k for k in envs if k.endswith("*") and rule.startswith(k[:-1])]
    assert len(keys) == 1, f"rule {rule}: no rule or several generated ones in workflow/rules match it: {keys}"
    return keys[0]


def env_packages(env_file: Path) -> dict[str, str | None]:
    """Package name -> pinned version (None if unpinned) of a conda env file, pip section included."""
    out: dict[str, str | None] = {}
    for dep in yaml.safe_load(env_file.read_text())["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            if item.startswith("-"):  # pip options such as --index-url
                continue
            name, _, version = re.split(r"(==|=)", item, maxsplit=1) if "=" in item else (item, "", "")
            name = canonicalize_name(name.strip())
            out[CONDA_TO_PYPI.get(name, name)] = version.strip() or None
    return {k: v for k, v in out.items() if k not in NOT_PYTHON}


def dependency_closure(names) -> set[str]:
    """The distributions `names` need when installed: their requirements (no extras), recursively."""
    seen, todo = set(), [canonicalize_name(n) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for r in map(Requirement, reqs):
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(r.name))
    return seen


@lru_cache(maxsize=1)
def module_owners() -> dict[str, set[str]]:
    """Top-level importable name -> the (canonical) distributions that install it."""
    return {m: {canonicalize_name(d) for d in ds} for m, ds in metadata.packages_distributions().items()}


def importable(dists: set[str]) -> list[str]:
    """The top-level modules the distributions `dists` install."""
    return sorted(m for m, owners in module_owners().items() if owners & dists)


def test_env_files_list_installed_packages_at_the_venvs_versions():
    """What the envs pin is what the tests run (constraints.txt): same versions, every package known."""
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        for name, pin in env_packages(env).items():
            try:
                have = metadata.version(name)
            except metadata.PackageNotFoundError:
                pytest.fail(f"{env.name} lists {name}, which is not installed here: its rules cannot be checked")
            have = Version(have).public  # 2.13.0+cpu: the local build label is not part of a pin
            if pin:
                assert have == pin or have.startswith(pin + "."), f"{env.name}: {name}={pin}, installed {have}"


def test_every_rule_has_an_env_file():
    envs = rule_envs()
    assert {"train_*", "meanfield_*", "data", "fetch"} <= set(envs), envs
    assert all(envs.values()), [rule for rule, env in envs.items() if not env]
    for env in set(envs.values()):
        assert (ROOT / env).is_file(), env


def guarded(env: str, args: list[str], cwd: Path, tmp: Path, extra_env: dict | None = None,
            packages: list[str] | None = None) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run `python -m mfae ARGS` with only the packages of env (or `packages`) and their dependencies
    importable; also return the top-level modules it was refused."""
    tag = re.sub(r"\W", "_", " ".join(args[:2]) + str(abs(hash(tuple(args)))))
    log = tmp / f"blocked_{tag}.txt"
    spec = tmp / f"allow_{tag}.json"
    dists = dependency_closure(env_packages(ROOT / env) if packages is None else packages)
    spec.write_text(json.dumps(dict(env=env, modules=importable(dists), dists=sorted(dists), log=str(log))))
    proc = subprocess.run([sys.executable, str(GUARD), str(spec), "-m", "mfae", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(extra_env or {})})
    blocked = sorted(set(log.read_text().split())) if log.exists() else []
    return proc, blocked


def test_the_guard_blocks_what_an_env_lacks(tmp_path):
    """The check itself: a job needing yaml (mfae plan reads config files) fails, naming yaml."""
    proc, blocked = guarded("envs/numpy-only.yaml", ["plan", "--configfile", ".test/config.yaml", "--out",
                                                     str(tmp_path / "p.csv")], ROOT, tmp_path, packages=["numpy"])
    assert proc.returncode != 0
    assert "envs/numpy-only.yaml does not provide the module 'yaml'" in proc.stderr, proc.stderr[-2000:]
    assert "yaml" in blocked


# --- the tiny study ------------------------------------------------------------------------------------

class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def idx_server():
    """Debian's Fashion-MNIST files over HTTP on 127.0.0.1 (the fetch rule's mirror); None without them."""
    if not all((DEBIAN / f).is_file() for f in IDX):
        yield None
        return
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          lambda *a, **k: _Files(*a, directory=str(DEBIAN), **k))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def tiny_config(tmp_path: Path, mirror: str | None) -> Path:
    """.test/config.yaml cut to the fewest jobs that still include every rule, plus a user array and a
    fetched Fashion-MNIST folder (served from `mirror` on 127.0.0.1; none without a mirror)."""
    cfg = yaml.safe_load((ROOT / ".test" / "config.yaml").read_text())
    ex = cfg["experiments"]
    ex["phases"].update(N=[20], seeds=[0])
    ex["shrinkage"].update(activations=["tanh"], N=[20])
    ex["convergence"].update(d=[6], N_over_d=[2, 4], seeds=[0], n_boot=5)
    ex["convergence_lowrank"]["enabled"] = False
    ex["convergence_rank"].update(N_over_r=[1, 2], seeds=[0], n_boot=5)
    ex["digits"].update(seeds=[0])
    np.save(tmp_path / "X.npy", np.random.default_rng(0).standard_normal((60, 6)))
    ex["userdata"] = dict(data=dict(source="array", path=str(tmp_path / "X.npy")), N=[10], seeds=[0], t_max=1)
    # a variant study: the intrinsic-dimension, per-variant fit and table rules (and F8)
    ex["intrinsic_digits"] = dict(data=dict(source="digits", max_samples=200, variants=["real", "pca4"]),
                                  N=[4, 8, 16], seeds=[0], t_max=0.5, lr=0.1, n_boot=5,
                                  intrinsic_dim=dict(n_samples=60, repeats=1))
    if mirror:
        ex["fashion_mnist"] = dict(data=dict(source="fashion-mnist", path=str(tmp_path / "fm"), fetch=True,
                                             mirrors=[mirror], max_samples=300, max_test=100),
                                   N=[10], seeds=[0], t_max=1, lr=0.8)
    f = tmp_path / "tiny.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return f


def planned_jobs(workdir: Path, configfile: Path) -> list[tuple[str, list[str], list[str], str]]:
    """(rule, inputs, outputs, shell command) of every job, in an order that runs each job after its
    inputs' jobs."""
    p = subprocess.run([SNAKEMAKE, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
                        "--configfile", str(configfile), "--cores", "1", "-n", "-p"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    jobs = []
    for block in re.split(r"^\s*\[\w{3} \w{3} [^\]]*\].*$", p.stdout, flags=re.M)[1:]:
        rule, shell = re.search(r"^\s*(?:local)?rule (\w+):", block, re.M), re.search(r"^Shell command: (.*)$", block, re.M)
        inputs, outputs = (re.search(rf"^\s+{k}: (.*)$", block, re.M) for k in ("input", "output"))
        if shell and outputs:  # not the target rule `all` (no output, no command)
            jobs.append((rule.group(1), inputs.group(1).split(", ") if inputs else [], outputs.group(1).split(", "),
                         shell.group(1)))
    return jobs


def mfae_args(command: str) -> list[str]:
    """`mfae ARGS > log 2>&1` -> ARGS (the log redirection dropped)."""
    args = shlex.split(re.sub(r"\s*>\s*\S+\s+2>&1\s*$", "", command))
    assert args[0] == "mfae", command
    return args[1:]


@pytest.mark.slow
def test_every_rule_runs_with_only_its_env_packages(tmp_path, monkeypatch, idx_server):
    from mfae.cli import main

    proxy = dict(no_proxy="127.0.0.1,localhost", http_proxy="", https_proxy="")
    for k, v in proxy.items():
        monkeypatch.setenv(k, v)
    cfgfile = tiny_config(tmp_path, idx_server)
    jobs = planned_jobs(tmp_path, cfgfile)
    envs = rule_envs()
    ran = {rule_key(job[0], envs) for job in jobs}
    assert set(envs) - ({"fetch"} if idx_server is None else set()) == ran, \
        f"the tiny study must have a job of every rule: {set(envs) ^ ran}"
    made_by = {out: k for k, job in enumerate(jobs) for out in job[2]}

    def upstream(k: int) -> set[int]:
        """The jobs whose outputs job k needs, directly or not."""
        out, todo = set(), list(jobs[k][1])
        while todo:
            i = made_by.get(todo.pop())
            if i is not None and i not in out:
                out.add(i)
                todo += jobs[i][1]
        return out

    # one job per rule and per `mfae data` source (the one needing fewest others) runs as its own
    # process with only its env importable; first, in this process (fast, unguarded), the jobs it needs
    picked: dict[tuple[str, str], int] = {}
    for k, (rule, _, _, cmd) in enumerate(jobs):
        args = mfae_args(cmd)
        key = (rule_key(rule, envs), args[1] if args[0] == "data" else "")
        if key not in picked or len(upstream(k)) < len(upstream(picked[key])):
            picked[key] = k
    needed = set().union(*(upstream(k) for k in picked.values()))
    fetch = [key for key in picked if key[0] == "fetch"]
    needed -= {picked[key] for key in fetch}  # the guarded fetch runs first, downloading for real

    def run(key):
        return key, *guarded(envs[key[0]], mfae_args(jobs[picked[key]][3]), tmp_path, tmp_path, proxy)

    results = [run(k) for k in fetch]
    monkeypatch.chdir(tmp_path)
    for k in sorted(needed):
        for out in jobs[k][2]:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
        assert main(mfae_args(jobs[k][3])) == 0, jobs[k]
    for k in picked.values():
        for out in jobs[k][2]:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        results += list(pool.map(run, [k for k in picked if k[0] != "fetch"]))
    failures = []
    for (rule, variant), proc, blocked in results:
        if proc.returncode != 0:
            owners = {m: sorted(module_owners().get(m, {"?"})) for m in blocked}
            failures.append(f"rule {rule}{' ' + variant if variant else ''} ({envs[rule]}): exit {proc.returncode}; "
                            f"blocked imports (module: distribution): {owners}\n{proc.stderr[-1500:]}")
    assert not failures, "\n".join(failures)
    if idx_server is None:
        pytest.skip(f"every rule but fetch checked: the fetch rule's job needs Debian's Fashion-MNIST in {DEBIAN} "
                    "(its checksums are pinned): `make test-data`")
