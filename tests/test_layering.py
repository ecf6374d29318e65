"""Layering of the ``mtal_ray`` package, checked without a cluster (and mostly without torch).

* **No import cycles.** The import graph is built statically with :mod:`ast` over
  ``mtal_ray/**/*.py``. Only *module-level* imports are edges (statements at the top level
  of a module, also inside a top-level ``try``/``if``, but not under ``if TYPE_CHECKING:``):
  they are what runs when a module is imported, so they are what can deadlock into a
  partially initialised module. Imports inside functions are the sanctioned way to defer
  a heavy or upward dependency and are not counted. ``from pkg import name`` is an edge to
  ``pkg``, and to ``pkg.name`` too when that is a module. Importing a submodule implicitly
  imports its parent packages first; those implicit edges are not counted either (a
  package that imports its own submodules is not a cycle).
* **No upward imports.** Nothing below :mod:`mtal_ray.cli` imports the commands
  (``mtal_ray.cli``, ``mtal_ray.launch``), at module level or inside a function.
* **The pure core stays light.** Importing ``mtal_ray.data``, ``mtal_ray.selection``,
  ``mtal_ray.confidence``, ``mtal_ray.taskspec`` or ``mtal_ray.errors`` in a fresh
  interpreter loads none of torch, transformers, Ray, MLflow.
* **Commands import lazily.** ``mtal-ray --help``, ``mtal-ray select --help``, ``mtal-ray
  status`` on a run directory and ``mtal-ray data stats`` on a tiny corpus load none of them
  either (and not seqeval).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mtal_ray"
HEAVY = ("torch", "transformers", "ray", "mlflow")
PURE_CORE = (
    "mtal_ray.data",
    "mtal_ray.selection",
    "mtal_ray.confidence",
    "mtal_ray.taskspec",
    "mtal_ray.errors",
)
COMMANDS = ("mtal_ray.cli", "mtal_ray.launch")

#: Known module-level import cycles, each as the set of modules of one strongly connected
#: component, with why it is tolerated. Remove an entry once its cycle is broken; the test
#: fails on any cycle not listed here (and on an entry that no longer matches a cycle).
ALLOWED_CYCLES: dict[frozenset[str], str] = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _top_level_imports(node.body)
            yield from _top_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _top_level_imports(block)
            for handler in node.handlers:
                yield from _top_level_imports(handler.body)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> set[str]:
    """Names of the ``mtal_ray`` modules ``node`` imports (maybe not all existing)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    return {source} | {f"{source}.{alias.name}" for alias in node.names}


def import_graph(*, module_level_only: bool) -> dict[str, set[str]]:
    """``module -> mtal_ray modules it imports``, statically from the sources."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        if module_level_only:
            nodes = list(_top_level_imports(tree.body))
        else:
            nodes = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in nodes:
            edges |= {t for t in _targets(node, name, is_package) if t in modules and t != name}
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in component)
    return "{" + ", ".join(sorted(component)) + "}: " + "; ".join(edges)


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": set()}
    assert sorted(map(sorted, cycles(graph))) == [["a", "b", "c"], ["d", "e"]]


def test_relative_and_from_imports_resolve():
    node = ast.parse("from ..data import schema").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _targets(node, "mtal_ray.cli.data", False) == {"mtal_ray.data", "mtal_ray.data.schema"}
    assert _targets(node, "mtal_ray.cli", True) == {"mtal_ray.data", "mtal_ray.data.schema"}


def test_no_import_cycles_among_mtal_ray_modules():
    graph = import_graph(module_level_only=True)
    assert "mtal_ray.taskspec" in graph and graph["mtal_ray.data.schema"]
    found = cycles(graph)
    unexpected = [c for c in found if c not in ALLOWED_CYCLES]
    stale = [c for c in ALLOWED_CYCLES if c not in found]
    assert not unexpected, "module-level import cycles:\n" + "\n".join(
        _describe(c, graph) for c in unexpected
    )
    assert not stale, "ALLOWED_CYCLES lists cycles that are gone: " + "; ".join(
        ", ".join(sorted(c)) for c in stale
    )


def test_nothing_below_the_commands_imports_them():
    graph = import_graph(module_level_only=False)

    def is_command(module: str) -> bool:
        return any(module == c or module.startswith(c + ".") for c in COMMANDS)

    upward = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        if not is_command(module)
        for target in targets
        if is_command(target)
    )
    assert not upward, "library modules import the command layer: " + ", ".join(upward)


def _loaded_modules(code: str, cwd: Path) -> list[str]:
    """``sorted(sys.modules)`` printed (as the last line) by ``code`` in a fresh interpreter."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _heavy(modules: list[str], heavy: tuple[str, ...] = HEAVY) -> list[str]:
    return sorted({m.split(".")[0] for m in modules if m.split(".")[0] in heavy})


@pytest.mark.parametrize("module", PURE_CORE)
def test_the_pure_core_imports_no_heavy_library(module):
    loaded = _loaded_modules(f"import {module}", REPO)
    assert module in loaded
    assert _heavy(loaded) == [], f"importing {module} loads {_heavy(loaded)}"


def _run_main(argv: list[str], *, as_module: bool = False) -> str:
    """Code that runs the ``mtal-ray`` CLI with ``argv`` and swallows its SystemExit."""
    if as_module:  # exactly what ``python -m mtal_ray.cli ARGV`` executes
        call = f"sys.argv = ['mtal_ray.cli', *{argv!r}]\nrunpy.run_module('mtal_ray.cli', run_name='__main__')"
    else:  # the ``mtal-ray`` console script calls mtal_ray.cli:main
        call = f"from mtal_ray.cli import main\nsys.exit(main({argv!r}))"
    return (
        "import contextlib, io, runpy, sys\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n" + textwrap.indent(call, "        ") + "\n"
        "    except SystemExit as done:\n"
        "        assert done.code in (0, None), done.code\n"
    )


@pytest.fixture
def tiny_slu(tmp_path: Path) -> Path:
    split = tmp_path / "tiny" / "train"
    split.mkdir(parents=True)
    (split / "seq.in").write_text("show flights to boston\nhello\n", encoding="utf-8")
    (split / "seq.out").write_text("O O O B-city\nO\n", encoding="utf-8")
    (split / "label").write_text("atis_flight\ngreeting\n", encoding="utf-8")
    return split.parent


@pytest.mark.parametrize(
    ("argv", "as_module"),
    [
        (["--help"], True),
        (["select", "--help"], False),
        (["data", "stats", "{corpus}"], False),
        (["status", "{run}"], False),
    ],
    ids=[
        "python -m mtal_ray.cli --help",
        "mtal-ray select --help",
        "mtal-ray data stats",
        "mtal-ray status",
    ],
)
def test_commands_import_heavy_libraries_only_when_they_run(argv, as_module, tiny_slu, tmp_path):
    run = tmp_path / "run"  # a run directory as the loop leaves it, read by `status`
    run.mkdir()
    state = {"version": 1, "config_digest": "x", "iterations": 2, "iteration": 1,
             "step": "score", "labeled": {"sf": ["a"]}, "pool": ["b"], "dev": [],
             "rounds": [{"iteration": 0, "dev": {"sf": 0.5}, "seconds": {"train": 3.0}}]}  # fmt: skip
    (run / "state.json").write_text(json.dumps(state), encoding="utf-8")
    argv = [a.format(corpus=tiny_slu, run=run) for a in argv]
    loaded = _loaded_modules(_run_main(argv, as_module=as_module), REPO)
    assert "mtal_ray.cli" in loaded
    heavy = _heavy(loaded, (*HEAVY, "seqeval"))
    assert heavy == [], f"mtal-ray {' '.join(argv)} loads {heavy}"


def test_python_m_cli_and_launch_still_answer_help():
    for module in ("mtal_ray.cli", "mtal_ray.launch"):
        done = subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert "usage:" in done.stdout


def test_help_builds_the_parser_without_numpy_or_pyarrow():
    """``mtal-ray --help`` and ``select --help`` (the parser) import no array library:
    ~0.4 s of numpy + pyarrow on this machine, most of the command's time."""
    for argv in (["--help"], ["select", "--help"]):
        loaded = _loaded_modules(_run_main(argv), REPO)
        arrays = _heavy(loaded, ("numpy", "pyarrow", "pandas", "scipy"))
        assert arrays == [], f"mtal-ray {' '.join(argv)} loads {arrays}"


def test_the_light_choice_lists_match_the_real_ones():
    """The parser's lists (kept light for --help) are the registry's and the readers'."""
    from mtal_ray.cli.data import FORMATS, OVERLAP_POLICIES
    from mtal_ray.cli.selection import METHOD_NAMES
    from mtal_ray.data import corpus, spans
    from mtal_ray.selection.registry import METHODS

    assert tuple(METHODS) == METHOD_NAMES
    assert FORMATS == corpus.FORMATS
    assert OVERLAP_POLICIES == spans.OVERLAP_POLICIES
