"""`pip check`, scoped to mtal_ray and everything it requires.

A shared machine may hold packages the project never asked for (a benchmark baseline installed
with ``--no-deps``, say); their broken requirements are not ours to fail on. A broken requirement
anywhere in mtal_ray's own dependency closure (with the ``dev`` and ``deepspeed`` extras) fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = "mtal_ray"
EXTRAS = {"dev", "deepspeed"}


def closure(root: str, extras: set[str]) -> set[str]:
    """Canonical names of ``root`` and every installed package it needs, transitively."""
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [(root, extras)]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # missing: pip check reports it against whoever needs it
        for spec in requires:
            req = Requirement(spec)
            env = [{"extra": e} for e in (wanted or {""})]
            if req.marker is None or any(req.marker.evaluate(e) for e in env):
                todo.append((req.name, set(req.extras)))
    return seen


def main() -> int:
    ours = closure(ROOT, EXTRAS)
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, check=False
    )
    problems, ignored = [], []
    for line in proc.stdout.splitlines():
        match = re.match(r"(\S+) \S+ (requires|has requirement)", line)
        if match is None:
            continue
        (problems if canonicalize_name(match.group(1)) in ours else ignored).append(line)
    for line in ignored:
        print(f"ignored (not needed by {ROOT}): {line}")
    for line in problems:
        print(f"BROKEN: {line}")
    print(f"dependency check: {len(ours)} packages in {ROOT}'s closure, {len(problems)} broken")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
