"""Mutation check: plant one-line bugs in the core modules, one at a time, and see the fast suite fail.

    .venv/bin/python tests/mutation/mutate.py              # `make mutate`: the default seeded sample
    .venv/bin/python tests/mutation/mutate.py --list       # every mutant, without running anything
    .venv/bin/python tests/mutation/mutate.py --sample 0   # all of them (hours)
    .venv/bin/python tests/mutation/mutate.py --files src/mfae/ode.py --sample 10 --seed 3

Mutants are generated from the AST of each target (below), like mutmut: operator swaps (+/-, *//, ** -> *),
sign flips (-x -> x), swapped and off-by-one comparisons (< <=, < >, == !=), and/or, constants (k -> k+1
for |k| < 100, else 2k; f -> 2f; True <-> False), slice bounds moved by one, `.T` dropped or added to a matmul operand, max <-> min,
a keyword argument dropped (an ignored argument: generator=, dtype=, ...), and a call statement deleted
(an update that is never made). Docstrings, error messages (`raise ...`) and annotations are left alone.

The checkout is first copied to a snapshot (tracked and untracked-but-not-ignored files), and each worker
gets its own copy of it: mutants are written there (PYTHONPATH points to its src/; the working tree is
never modified, and edits made to it during a run change nothing). The fast suite's test files that use
the mutated module run there with `-x` and a timeout: the files importing it (also inside functions),
then the unit-test files importing a module that imports it at top level; the bench scripts' smoke runs
and whole-config dry runs are left out (DESELECT). Outcomes: killed (a test failed, or the module no
longer imports), survived, timeout (the tests did not finish: a hang is not a failure a user sees, so it
counts against the score), error (pytest itself failed). Mutants listed in tests/mutation/equivalent.txt
(no behaviour change; each with its reason) are reported but not counted. At the end the tests that killed
mutants run once more on the unmutated code; a mutant killed only by a test that fails anyway counts as an
error, not a kill. The score is
killed / (killed + survived + timeout); the exit status is 1 below --min-score (default 0.9).

Sampling: mutants are enumerated in a fixed order, then a seeded sample of --sample of them is drawn,
stratified by target (every target gets its share, at least 2). docs/testing.md records the score and
the run time of the default.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
EQUIVALENT = Path(__file__).with_name("equivalent.txt")
# Where sources and tests are read: the checkout for --list, a snapshot of it during a run (so that edits
# made to the checkout while mutants run change nothing: every worker copies the snapshot).
BASE = ROOT

# target file -> the top-level functions/classes mutated (None: the whole module). runsetup.py: a run's
# samplers, test set and initial weights (the step, the measurements and the schedule have their own targets).
TARGETS: dict[str, tuple[str, ...] | None] = {
    "src/mfae/sgd.py": ("sgd_direction", "Stepper"),
    "src/mfae/meanfield.py": None,
    "src/mfae/activations.py": None,
    "src/mfae/ode.py": None,
    "src/mfae/measure.py": None,
    "src/mfae/runsetup.py": ("GaussianSampler", "RowSampler", "prepare_run"),
    "src/mfae/runconfig.py": ("n_steps", "derived_seed", "time_grid", "check_grid", "measure_steps"),
    "src/mfae/convergence/fit.py": None,
    "src/mfae/convergence/errors.py": ("run_errors", "collect_runs"),
    "src/mfae/checkpoint.py": None,
    "src/mfae/data.py": None,
    "src/mfae/spectrum.py": None,
}
DEFAULT_SAMPLE = 120
# test files in the order they run for a mutant (fast unit tests first; the rest after, by name)
FIRST = ("test_meanfield.py", "test_data.py", "test_runs.py", "test_convergence.py", "test_train.py",
         "test_perf_paths.py", "test_perf_jobs.py", "test_fetch.py", "test_figures.py", "test_plan.py",
         "test_batch.py")
MARKERS = "not slow and not slurm"
# Fast-suite tests that check no core module but cost much of a mutant's time: the bench scripts' smoke
# runs and Snakemake dry runs of whole configs (they run in `make test-fast`, not for each mutant).
DESELECT = "not test_bench_ and not test_dry_run_ and not test_paper_dag and not test_paper_smoke_dag"


# --- generating mutants ----------------------------------------------------------------------------------

@dataclass
class Mutant:
    file: str      # relative to the repository root
    index: int     # position among the file's mutation points (the order of `_points`)
    lineno: int
    scope: str     # the enclosing top-level function or class
    kind: str      # what was changed, e.g. "Add -> Sub"
    line: str      # the original source line, stripped
    nth: int = 1   # the same change on an identical line (or twice on one line): its occurrence, 1, 2, ...

    @property
    def key(self) -> str:
        """Stable across edits elsewhere in the file: file, the line's text and the change (and #n for the
        n-th occurrence of the same change on the same text)."""
        return f"{self.file} | {self.line} | {self.kind}" + (f" #{self.nth}" if self.nth > 1 else "")


_BINOP_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.Pow: ast.Mult,
               ast.FloorDiv: ast.Div}
_CMP_SWAP = {ast.Lt: (ast.LtE, ast.Gt), ast.LtE: (ast.Lt,), ast.Gt: (ast.GtE, ast.Lt), ast.GtE: (ast.Gt,),
             ast.Eq: (ast.NotEq,), ast.NotEq: (ast.Eq,), ast.Is: (ast.IsNot,), ast.IsNot: (ast.Is,),
             ast.In: (ast.NotIn,), ast.NotIn: (ast.In,)}
_NAME_SWAP = {"max": "min", "min": "max", "maximum": "minimum", "minimum": "maximum", "argmax": "argmin",
              "argmin": "argmax", "clamp_min": "clamp_max"}
_QUIET_CALLS = {"log", "print", "warn", "debug", "info"}  # messages only


def _skipped_children(node: ast.AST) -> set[int]:
    """Subtrees never mutated: docstrings, error messages, annotations, f-strings, logging calls."""
    skip: list[ast.AST] = []
    for n in ast.walk(node):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = n.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                skip.append(body[0])
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                skip += [a.annotation for a in (*n.args.args, *n.args.kwonlyargs, *n.args.posonlyargs)
                         if a.annotation is not None]
                if n.returns is not None:
                    skip.append(n.returns)
        elif isinstance(n, ast.Raise):
            skip.append(n)
        elif isinstance(n, ast.AnnAssign):
            skip.append(n.annotation)
        elif isinstance(n, ast.JoinedStr):
            skip.append(n)
        elif isinstance(n, ast.Call):
            f = n.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            if name in _QUIET_CALLS:
                skip.append(n)
    return {id(m) for s in skip for m in ast.walk(s)}


def _one_more(expr: ast.expr, delta: int) -> ast.expr:
    return ast.BinOp(left=expr, op=ast.Add() if delta > 0 else ast.Sub(), right=ast.Constant(abs(delta)))


def _points(tree: ast.Module, scopes: tuple[str, ...] | None) -> Iterator[tuple[ast.AST, str, str, Callable]]:
    """(node, scope, kind, apply) for every mutation point, in a fixed order; apply() edits the tree."""
    for top in tree.body:
        if not isinstance(top, (ast.FunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)):
            continue
        scope = top.name if isinstance(top, (ast.FunctionDef, ast.ClassDef)) else "<module>"
        if scopes is not None and scope not in scopes:
            continue
        skip = _skipped_children(top)
        parents = {id(c): p for p in ast.walk(top) for c in ast.iter_child_nodes(p)}
        for node in ast.walk(top):
            if id(node) in skip:
                continue
            yield from _node_points(node, scope, parents)


def _node_points(node: ast.AST, scope: str, parents: dict) -> Iterator[tuple[ast.AST, str, str, Callable]]:
    def setter(field: str, value):
        return lambda: setattr(node, field, value)

    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in _BINOP_SWAP:
        new = _BINOP_SWAP[type(node.op)]
        yield node, scope, f"{type(node.op).__name__} -> {new.__name__}", setter("op", new())
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
        for side in ("left", "right"):
            operand = getattr(node, side)
            if isinstance(operand, ast.Attribute) and operand.attr == "T":
                yield node, scope, f"drop .T ({side})", setter(side, operand.value)
            elif isinstance(operand, (ast.Name, ast.Attribute, ast.Subscript)):
                yield node, scope, f"add .T ({side})", setter(side, ast.Attribute(operand, "T", ast.Load()))
    if isinstance(node, ast.Attribute) and node.attr == "T" and not isinstance(parents.get(id(node)), ast.BinOp):
        parent = parents.get(id(node))
        for field, value in ast.iter_fields(parent) if parent is not None else ():
            if value is node:
                yield node, scope, "drop .T", (lambda p=parent, f=field: setattr(p, f, node.value))
            elif isinstance(value, list) and any(v is node for v in value):
                i = next(k for k, v in enumerate(value) if v is node)
                yield node, scope, "drop .T", (lambda lst=value, i=i: lst.__setitem__(i, node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.Not)):
        parent = parents.get(id(node))
        what = "sign flip" if isinstance(node.op, ast.USub) else "drop not"
        if isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            pass  # a negative literal: the constant mutations cover it
        else:
            for field, value in ast.iter_fields(parent) if parent is not None else ():
                if value is node:
                    yield node, scope, what, (lambda p=parent, f=field: setattr(p, f, node.operand))
                elif isinstance(value, list) and any(v is node for v in value):
                    i = next(k for k, v in enumerate(value) if v is node)
                    yield node, scope, what, (lambda lst=value, i=i: lst.__setitem__(i, node.operand))
    if isinstance(node, ast.Compare):
        for j, op in enumerate(node.ops):
            for new in _CMP_SWAP.get(type(op), ()):
                def apply(j=j, new=new):
                    node.ops[j] = new()
                yield node, scope, f"{type(op).__name__} -> {new.__name__}", apply
    if isinstance(node, ast.BoolOp):
        new = ast.Or if isinstance(node.op, ast.And) else ast.And
        yield node, scope, f"{type(node.op).__name__} -> {new.__name__}", setter("op", new())
    if isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        v = node.value
        if isinstance(v, bool):
            yield node, scope, f"{v} -> {not v}", setter("value", not v)
        elif isinstance(v, int):  # small ints are indices, counts and bounds: off by one; large ones: doubled
            new = v + 1 if abs(v) < 100 else 2 * v
            yield node, scope, f"{v} -> {new}", setter("value", new)
        else:
            new = 2 * v if v != 0 else 1.0
            yield node, scope, f"{v!r} -> {new!r}", setter("value", new)
    if isinstance(node, ast.Slice):
        if node.lower is not None:
            yield node, scope, "slice lower + 1", setter("lower", _one_more(node.lower, 1))
        if node.upper is not None:
            yield node, scope, "slice upper - 1", setter("upper", _one_more(node.upper, -1))
    if isinstance(node, ast.Name) and node.id in _NAME_SWAP and isinstance(parents.get(id(node)), ast.Call):
        yield node, scope, f"{node.id} -> {_NAME_SWAP[node.id]}", setter("id", _NAME_SWAP[node.id])
    if isinstance(node, ast.Attribute) and node.attr in _NAME_SWAP:
        yield node, scope, f".{node.attr} -> .{_NAME_SWAP[node.attr]}", setter("attr", _NAME_SWAP[node.attr])
    if isinstance(node, ast.Call):
        for j, kw in enumerate(node.keywords):
            if kw.arg is not None:
                yield node, scope, f"drop {kw.arg}=", (lambda j=j: node.keywords.pop(j))
    if isinstance(node, (ast.FunctionDef, ast.For, ast.While, ast.If, ast.With, ast.Try)):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            for j, st in enumerate(body or ()):
                if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call) and len(body) > 1:
                    yield st, scope, "delete call statement", (lambda b=body, j=j: b.__setitem__(j, ast.Pass()))


def mutants_of(rel: str, scopes: tuple[str, ...] | None) -> list[Mutant]:
    text = (BASE / rel).read_text()
    lines = text.splitlines()
    out, seen = [], Counter()
    for i, (node, scope, kind, _apply) in enumerate(_points(ast.parse(text), scopes)):
        ln = getattr(node, "lineno", 0)
        line = lines[ln - 1].strip() if ln else ""
        seen[line, kind] += 1
        out.append(Mutant(rel, i, ln, scope, kind, line, seen[line, kind]))
    return out


def mutated_source(m: Mutant) -> str:
    """The target file with mutant m applied (the module re-parsed, the m.index-th point applied)."""
    tree = ast.parse((BASE / m.file).read_text())
    for i, (_node, _scope, kind, apply) in enumerate(_points(tree, TARGETS[m.file])):
        if i == m.index:
            assert kind == m.kind, (m, kind)
            apply()
            return ast.unparse(ast.fix_missing_locations(tree)) + "\n"
    raise LookupError(f"mutant {m.key} not found")


# --- which tests run for a module -------------------------------------------------------------------------

def _module_name(path: Path) -> str:
    parts = path.relative_to(BASE / "src").with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The mfae modules a file imports (`import mfae.x`, `from mfae.x import y`, `from mfae import x`,
    relative imports inside the package), at top level or anywhere."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    here = _module_name(path).split(".") if path.is_relative_to(BASE / "src") else []
    is_pkg = path.name == "__init__.py"
    out = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name.startswith("mfae")}
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                base = here[: len(here) - n.level + (1 if is_pkg else 0)]
                mod = ".".join(base + ([n.module] if n.module else []))
            else:
                mod = n.module or ""
            if mod.startswith("mfae"):
                out.add(mod)
                out |= {f"{mod}.{a.name}" for a in n.names}
    return out


def tests_for(rel: str, test_files: list[Path]) -> list[Path]:
    """Test files that use module `rel`: those importing it (anywhere in the file), then among the unit-test
    files (FIRST) those importing a module that imports it at top level (transitively; a package counts
    through its __init__); within each, cheap files first (FIRST's order), so that -x stops early."""
    modules = {_module_name(p): p for p in (BASE / "src").rglob("*.py")}
    target = _module_name(BASE / rel)
    users = {target}
    changed = True
    while changed:
        changed = False
        for name, p in modules.items():
            if name not in users and _imports(p, top_level_only=True) & users:
                users.add(name)
                changed = True
    direct, indirect = [], []
    for t in test_files:
        imp = _imports(t, top_level_only=False)
        if target in imp:
            direct.append(t)
        elif imp & users:
            indirect.append(t)
    rank = lambda t: (FIRST.index(t.name) if t.name in FIRST else len(FIRST), t.name)  # noqa: E731
    # the files importing the module first (they test it most directly), heavy end-to-end files only then
    return sorted(direct, key=rank) + sorted((t for t in indirect if t.name in FIRST), key=rank)


# --- running ----------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    mutant: Mutant
    status: str          # killed, survived, timeout, error, equivalent
    seconds: float
    detail: str = ""


def read_equivalent() -> dict[str, str]:
    """The allow-list: `file | original line | change | reason` per line (# comments)."""
    out = {}
    if EQUIVALENT.exists():
        for ln in EQUIVALENT.read_text().splitlines():
            if ln.strip() and not ln.lstrip().startswith("#"):
                parts = [p.strip() for p in ln.split(" | ")]  # the line itself may hold " | " (annotations)
                if len(parts) >= 4:
                    out[" | ".join([parts[0], " | ".join(parts[1:-2]), parts[-2]])] = parts[-1]
    return out


_RUNNING: set[subprocess.Popen] = set()  # pytest processes in flight (ended on SIGTERM/SIGINT)


def _pytest(args: list[str], work: Path, timeout: float) -> tuple[int | None, str]:
    """Run pytest on `args` in the copy of the checkout `work` (its tests, and its src/ through PYTHONPATH);
    (exit status, or None on timeout; output)."""
    env = {**os.environ, "PYTHONPATH": str(work / "src"), "PYTHONDONTWRITEBYTECODE": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", MARKERS, "-k", DESELECT,
           "--basetemp", str(work.parent / (work.name + "-pytest")), *args]
    p = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _RUNNING.add(p)
    try:
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out
    except subprocess.TimeoutExpired:
        _end(p)
        return None, ""
    finally:
        _RUNNING.discard(p)


def _end(p: subprocess.Popen) -> None:
    """Stop a pytest run: SIGINT first, so that fixtures tear down (a test's tmpfs mount is unmounted),
    then SIGKILL if it does not exit within 30 s."""
    p.send_signal(signal.SIGINT)
    try:
        p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()


def _unmount_under(folder: Path) -> None:
    """Unmount what a killed test left mounted below `folder` (root only: tmpfs tests), so it can be removed."""
    try:
        mounts = [ln.split()[1] for ln in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return
    for m in sorted(mounts, reverse=True):
        if m.startswith(str(folder) + "/"):
            subprocess.run(["umount", "-l", m], capture_output=True)


def _failed_ids(output: str) -> list[str]:
    """The node ids pytest's short summary lists as FAILED or ERROR."""
    out = []
    for ln in output.splitlines():
        if ln.startswith(("FAILED ", "ERROR ")):
            out.append(ln.split(" ", 1)[1].split(" - ", 1)[0].strip())
    return out


def run_mutant(m: Mutant, tests: list[Path], work: Path, timeout: float) -> Outcome:
    target = work / m.file
    original = target.read_text()
    t0 = time.monotonic()
    try:
        target.write_text(mutated_source(m))
        rc, out = _pytest(["-x", *(str(t.relative_to(BASE)) for t in tests)], work, timeout)
    finally:
        target.write_text(original)
    if rc is None:
        return Outcome(m, "timeout", time.monotonic() - t0)
    status = {0: "survived", 1: "killed", 2: "killed"}.get(rc, "error")
    ids = _failed_ids(out)
    detail = ids[0] if ids else (out.strip().splitlines() or [""])[-1][:200]
    return Outcome(m, status, time.monotonic() - t0, detail)


def recheck_killers(outcomes: list[Outcome], work: Path, timeout: float) -> None:
    """Run the tests that killed mutants once more on the unmutated code: a mutant killed only by a test
    that also fails without it (a broken or flaky test, an edit in progress) becomes an `error`."""
    ids = sorted({o.detail for o in outcomes if o.status == "killed" and "::" in o.detail})
    if not ids:
        return
    rc, out = _pytest(ids, work, timeout)
    suspects = set(_failed_ids(out)) if rc is not None else set(ids)
    broken = set()
    for t in sorted(suspects):  # once more on its own: a test failing only beside others is not broken
        rc, out = _pytest([t], work, timeout)
        if rc != 0:
            broken.add(t)
            print(f"  {t} fails without any mutant:\n    " + "\n    ".join(out.strip().splitlines()[-5:]))
    for o in outcomes:
        if o.status == "killed" and o.detail in broken:
            o.status, o.detail = "error", f"{o.detail} fails without the mutant too"


def snapshot(dest: Path) -> Path:
    """Copy the checkout's files (git: tracked and untracked-but-not-ignored; otherwise all but the venv,
    results and caches) to `dest`."""
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(".venv", "results", ".snakemake", "__pycache__",
                                                                  "*.egg-info", ".git"))
        return dest
    for f in filter(None, files):
        src = ROOT / f
        if src.is_file() and not src.is_symlink():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / f)
    return dest


def sample(mutants: dict[str, list[Mutant]], n: int, seed: int) -> list[Mutant]:
    """A seeded sample of n mutants, stratified by target (each gets its share, at least 2)."""
    total = sum(len(v) for v in mutants.values())
    if n <= 0 or n >= total:
        return [m for v in mutants.values() for m in v]
    rng = random.Random(seed)
    out = []
    for ms in mutants.values():
        k = min(len(ms), max(2, round(n * len(ms) / total)))
        out += rng.sample(ms, k)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sample", type=int, default=DEFAULT_SAMPLE,
                    help=f"mutants to run, a seeded sample stratified by target; 0: all (default {DEFAULT_SAMPLE})")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    ap.add_argument("--files", nargs="+", default=list(TARGETS), help="targets to mutate (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants run at once, each with its own src copy (default 2)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per mutant (default 120)")
    ap.add_argument("--min-score", type=float, default=0.9, help="exit status 1 below this score (default 0.9)")
    ap.add_argument("--only", nargs="+", metavar="TEXT",
                    help="run only the mutants whose key (file | line | change) contains one of these texts "
                         "(instead of the sample), e.g. to re-check survivors after adding tests")
    ap.add_argument("--list", action="store_true", help="list the mutants (and their test files); run nothing")
    ap.add_argument("--report", type=Path, help="also write every outcome as JSON lines here")
    a = ap.parse_args(argv)

    unknown = [f for f in a.files if f not in TARGETS]
    if unknown:
        ap.error(f"not a target: {', '.join(unknown)} (targets: {', '.join(TARGETS)})")
    global BASE
    workdirs: list[Path] = []
    if not a.list:  # a snapshot of the checkout: mutants, their test files and every worker's copy
        snap = Path(tempfile.mkdtemp(prefix="mfae-mutate-"))
        workdirs.append(snap)
        BASE = snapshot(snap / "base")
    test_files = sorted((BASE / "tests").glob("test_*.py"))
    by_file = {rel: mutants_of(rel, TARGETS[rel]) for rel in a.files}
    tests = {rel: tests_for(rel, test_files) for rel in a.files}
    equivalent = read_equivalent()
    all_keys = {m.key for ms in mutants_of_all().values() for m in ms}
    stale = sorted(k for k in equivalent if k not in all_keys)
    chosen = ([m for ms in by_file.values() for m in ms if any(t in m.key for t in a.only)] if a.only
              else sample(by_file, a.sample, a.seed))
    print(f"{sum(map(len, by_file.values()))} mutants in {len(by_file)} targets; running {len(chosen)} "
          f"(seed {a.seed}), {a.jobs} at a time, timeout {a.timeout:g} s each")
    if a.list:
        for rel, ms in by_file.items():
            print(f"\n{rel}: {len(ms)} mutants; tests: {' '.join(t.name for t in tests[rel]) or '(none)'}")
            for m in ms:
                print(f"  {m.lineno:4d} {m.scope:20s} {m.kind:24s} {m.line[:70]}")
        return 0

    todo = [m for m in chosen if m.key not in equivalent]
    outcomes = [Outcome(m, "equivalent", 0.0, equivalent[m.key]) for m in chosen if m.key in equivalent]
    t_start = time.monotonic()

    def stop(signum, _frame):  # end the pytest children and remove the copies (the finally below)
        for p in list(_RUNNING):
            _end(p)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    try:
        free = []
        for i in range(max(1, a.jobs)):
            free.append(workdirs[0] / f"worker{i}")
            shutil.copytree(BASE, free[-1])

        def job(m: Mutant) -> Outcome:
            w = free.pop()
            try:
                if not tests[m.file]:
                    return Outcome(m, "error", 0.0, "no test file uses this module")
                return run_mutant(m, tests[m.file], w, a.timeout)
            finally:
                free.append(w)

        with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as pool:
            for o in pool.map(job, todo):
                outcomes.append(o)
                m = o.mutant
                print(f"{o.status:9s} {o.seconds:6.1f}s  {m.file}:{m.lineno} [{m.scope}] {m.kind}: {m.line[:60]}"
                      + (f"\n          {o.detail}" if o.detail else ""), flush=True)
        recheck_killers(outcomes, free[0], 10 * a.timeout)
    finally:
        for p in list(_RUNNING):
            _end(p)
        for w in workdirs:
            _unmount_under(w)
            shutil.rmtree(w, ignore_errors=True)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("killed", "timeout", "survived", "error",
                                                                   "equivalent")}
    caught = counts["killed"]
    judged = caught + counts["survived"] + counts["timeout"]
    score = caught / judged if judged else math.nan
    print(f"\nkilled {counts['killed']}, timeout {counts['timeout']}, survived {counts['survived']}, "
          f"error {counts['error']}, equivalent (allow-listed) {counts['equivalent']}; "
          f"score {score:.1%} of {judged} behaviour-changing mutants; {time.monotonic() - t_start:.0f} s")
    for o in outcomes:
        if o.status in ("survived", "timeout", "error"):
            print(f"  {o.status}: {o.mutant.key}" + (f"  ({o.detail})" if o.status == "error" else ""))
    for k in stale:
        print(f"  stale allow-list entry (no such mutant now): {k}")
    if a.report:
        with open(a.report, "w") as fh:
            for o in outcomes:
                fh.write(json.dumps(dict(asdict(o.mutant), status=o.status, seconds=round(o.seconds, 1),
                                         detail=o.detail)) + "\n")
    return 0 if judged and score >= a.min_score else 1


def mutants_of_all() -> dict[str, list[Mutant]]:
    return {rel: mutants_of(rel, scopes) for rel, scopes in TARGETS.items()}


if __name__ == "__main__":
    sys.exit(main())
