"""Run a command with only some installed packages importable (tests/test_envs.py).

    python tests/envguard.py ALLOW.json -m mfae ARGS...

ALLOW.json: {"env": "envs/train.yaml", "modules": [top-level names], "dists": [canonical distribution names],
"log": "blocked.txt"}. A meta-path
finder that wraps all others hides every top-level module that is neither in the standard library,
nor `mfae`, nor in "modules" (those of the env file's packages and their dependencies): it is not
found, exactly as in a conda env that lacks the package (optional imports stay optional; the metadata
of other distributions is hidden too, as importlib.metadata.version would not find them), its name is
appended to "log", and a run that dies of it says which env lacks which module.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import re
import runpy
import sys
import sysconfig

_STDLIB = sorted({sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")})
_STDLIB += [os.path.join(p, "lib-dynload") for p in _STDLIB]


def _in_stdlib(name: str) -> bool:
    """A module of the interpreter's own library folders (e.g. _sysconfigdata_*, not in stdlib_module_names)."""
    return importlib.machinery.PathFinder.find_spec(name, _STDLIB) is not None


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class Blocker(importlib.abc.MetaPathFinder):
    """Wraps the interpreter's finders: a module outside the env is simply not found, as where it is not
    installed (importlib.util.find_spec returns None, `import` raises ModuleNotFoundError)."""

    def __init__(self, finders: list, allowed: set[str], dists: set[str], log: str | None):
        self.finders, self.allowed, self.dists, self.log = finders, allowed, dists, log

    def find_distributions(self, context=None):
        """importlib.metadata sees only the env's distributions (xarray asks for versions this way)."""
        from importlib.metadata import DistributionFinder

        context = context or DistributionFinder.Context()
        for finder in self.finders:
            for dist in getattr(finder, "find_distributions", lambda _: [])(context):
                if _canonical(dist.metadata["Name"] or "") in self.dists:
                    yield dist

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if not (top in self.allowed or top in sys.stdlib_module_names or top in ("mfae", "__main__")
                or _in_stdlib(top)):
            if self.log:
                with open(self.log, "a") as fh:
                    fh.write(top + "\n")
            return None
        for finder in self.finders:
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                return spec
        return None


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    if sys.argv[2] != "-m":
        raise SystemExit("usage: envguard.py ALLOW.json -m MODULE ARGS...")
    module = sys.argv[3]
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # the tests folder (this script's), not part of any env
    sys.meta_path[:] = [Blocker(list(sys.meta_path), set(spec["modules"]), set(spec["dists"]), spec.get("log"))]
    sys.argv = [module, *sys.argv[4:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.partition(".")[0] not in spec["modules"]:
            sys.stderr.write(f"envguard: {spec['env']} does not provide the module {exc.name!r}\n")
        raise


if __name__ == "__main__":
    main()
