"""The map of docs/architecture.md, checked: layers, circles, private names, runtime and evaluation.

Two checks that do not share code:

* the import-linter contracts in ``pyproject.toml`` (the layer order, and "runtime code never imports
  ``facegate.evaluate``"), run with ``lint-imports``; grimp counts every import statement, those
  inside functions and under ``if TYPE_CHECKING`` too;
* this file's own scan of the source (:func:`scan`, every ``import`` anywhere in a module) for
  import circles between modules (a package's ``__init__`` counts as a module: a submodule that
  imports from its own package closes a circle), ``_private`` names imported from another module,
  and runtime modules importing ``evaluate``.

The last tests build small packages with one violation of each kind and show that both checks
report them, so a green run means the map holds, not that the checks looked away.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "facegate"
pytest.importorskip("importlinter", reason="import-linter is in the test extra (pip install -e '.[test]')")


# -- the scan ------------------------------------------------------------------------------------
@dataclass(repr=False)
class Scan:
    """What :func:`scan` found in one package."""

    modules: dict[str, Path]
    edges: dict[str, dict[str, int]] = field(default_factory=dict)  # module -> {imported module: line}
    private: list[str] = field(default_factory=list)  # "importer:line <- module._name"

    def __repr__(self) -> str:
        return f"Scan({len(self.modules)} modules, {sum(map(len, self.edges.values()))} imports)"

    def cycles(self) -> list[list[str]]:
        """Strongly connected components of more than one module (Tarjan, iterative)."""
        index: dict[str, int] = {}
        low: dict[str, int] = {}
        stack: list[str] = []
        on_stack: set[str] = set()
        out: list[list[str]] = []
        counter = 0
        for root in sorted(self.modules):
            if root in index:
                continue
            work = [(root, iter(sorted(self.edges.get(root, {}))))]
            index[root] = low[root] = counter
            counter += 1
            stack.append(root)
            on_stack.add(root)
            while work:
                v, children = work[-1]
                for w in children:
                    if w not in index:
                        index[w] = low[w] = counter
                        counter += 1
                        stack.append(w)
                        on_stack.add(w)
                        work.append((w, iter(sorted(self.edges.get(w, {})))))
                        break
                    if w in on_stack:
                        low[v] = min(low[v], index[w])
                else:
                    work.pop()
                    if work:
                        low[work[-1][0]] = min(low[work[-1][0]], low[v])
                    if low[v] == index[v]:
                        comp = []
                        while True:
                            w = stack.pop()
                            on_stack.discard(w)
                            comp.append(w)
                            if w == v:
                                break
                        if len(comp) > 1:
                            out.append(sorted(comp))
        return sorted(out)

    def describe_cycle(self, comp: list[str]) -> str:
        inside = set(comp)
        links = [f"{m}:{line} -> {t}" for m in comp for t, line in sorted(self.edges.get(m, {}).items()) if t in inside]
        return " <-> ".join(comp) + " (" + "; ".join(links) + ")"

    def imports_of(self, target: str, allowed: tuple[str, ...]) -> list[str]:
        """Imports of ``target`` (or its submodules) by modules outside ``allowed`` prefixes."""
        out = []
        for m, ts in sorted(self.edges.items()):
            if m == target or m.startswith(target + ".") or any(m == a or m.startswith(a + ".") for a in allowed):
                continue
            out += [f"{m}:{line} -> {t}" for t, line in sorted(ts.items()) if t == target or t.startswith(target + ".")]
        return out


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def scan(package: Path) -> Scan:
    """Every import statement of every module of ``package`` (a folder with ``__init__.py``)."""
    modules = {_module_name(p, package): p for p in sorted(package.rglob("*.py"))}
    result = Scan(modules, {m: {} for m in modules})
    top = package.name

    def owner(name: str) -> str | None:
        """The module that ``name`` (a dotted import target) is, or is inside of."""
        while name and name not in modules:
            if "." not in name:
                return None
            name = name.rsplit(".", 1)[0]
        return name or None

    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[tuple[str, str | None]] = []  # (dotted target, name taken from it)
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                for a in node.names:
                    sub = f"{source}.{a.name}"
                    targets.append((sub, None) if sub in modules else (source, a.name))
            for target, name in targets:
                if target != top and not target.startswith(top + "."):
                    continue
                t = owner(target)
                if t is None or t == mod:
                    continue
                result.edges[mod].setdefault(t, node.lineno)
                if name is not None and name.startswith("_") and not name.startswith("__"):
                    result.private.append(f"{mod}:{node.lineno} <- {t}.{name}")
    return result


def run_contracts(config: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on ``config``, with ``cwd`` first on the import path (this checkout's
    ``facegate``, not another one an editable install points at)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, str(config), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


RUNTIME_MAY_NOT_IMPORT = "facegate.evaluate"
MAY_IMPORT_EVALUATE = ("facegate.cli", "facegate.__main__")


# -- the real tree ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree() -> Scan:
    return scan(PACKAGE)


def test_the_layer_contracts_hold():
    """pyproject.toml's import-linter contracts: the layer order and no runtime import of evaluate."""
    res = run_contracts(ROOT / "pyproject.toml", ROOT)
    assert res.returncode == 0, res.stdout[res.stdout.find("Broken contracts"):] or res.stdout + res.stderr


def test_no_import_circles(tree):
    cycles = [tree.describe_cycle(c) for c in tree.cycles()]
    assert not cycles, "import circles:\n" + "\n".join(cycles)


def test_no_private_names_across_modules(tree):
    assert not tree.private, "private names imported from another module:\n" + "\n".join(tree.private)


def test_runtime_never_imports_evaluate(tree):
    found = tree.imports_of(RUNTIME_MAY_NOT_IMPORT, MAY_IMPORT_EVALUATE)
    assert not found, "runtime code imports evaluation code:\n" + "\n".join(found)


def test_the_scan_sees_the_whole_package(tree):
    """Sanity: the scan found the package, its function-local imports and its re-exports."""
    assert {"facegate.pipeline", "facegate.decide", "facegate.decide.tables", "facegate.gallery.gallery"} <= set(tree.modules)
    assert "facegate.pipeline" in tree.edges["facegate"]  # facegate.__getattr__ imports it inside a function
    assert "facegate.decide.tables" in tree.edges["facegate.pipeline"]


# -- the checks catch what they are for --------------------------------------------------------------
TOY = {
    "__init__.py": "",
    "base.py": "VALUE = 1\n",
    # a circle closed by a function-local import
    "ring_a.py": "from toy.ring_b import B\n\nA = 1\n",
    "ring_b.py": "B = 2\n\n\ndef f():\n    from toy.ring_a import A\n\n    return A\n",
    # a private name taken from another module
    "helper.py": "def _secret():\n    return 3\n",
    "user.py": "from toy.helper import _secret\n\nX = _secret()\n",
    # an upward import: the low layer imports the high one, inside a function
    "high.py": "from toy.base import VALUE\n",
    "low.py": "def g():\n    from toy import high\n\n    return high\n",
    # runtime code importing evaluation code, under TYPE_CHECKING
    "evaluate/__init__.py": "",
    "evaluate/protocol.py": "P = 1\n",
    "runtime.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from toy.evaluate.protocol import P\n",
    # a submodule importing from its own package, whose __init__ re-exports it
    "pkg/__init__.py": "from toy.pkg.inner import Y\n",
    "pkg/inner.py": "Y = 1\n\n\ndef h():\n    from toy.pkg import Y as again\n\n    return again\n",
}

TOY_CONTRACTS = """\
[importlinter]
root_package = toy

[importlinter:contract:layers]
name = toy layers
type = layers
containers = toy
layers =
    high
    low
    base

[importlinter:contract:evaluate]
name = toy runtime never imports evaluate
type = forbidden
source_modules =
    toy.runtime
forbidden_modules =
    toy.evaluate
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    for name, text in TOY.items():
        path = root / "toy" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / ".importlinter").write_text(TOY_CONTRACTS)
    return root


def test_the_scan_reports_circles_private_names_and_runtime_imports_of_evaluate(toy):
    found = scan(toy / "toy")
    assert found.cycles() == [["toy.pkg", "toy.pkg.inner"], ["toy.ring_a", "toy.ring_b"]]
    assert "toy.ring_b:5 -> toy.ring_a" in found.describe_cycle(["toy.ring_a", "toy.ring_b"])
    assert found.private == ["toy.user:1 <- toy.helper._secret"]
    assert found.imports_of("toy.evaluate", ("toy.cli",)) == ["toy.runtime:4 -> toy.evaluate.protocol"]


def test_the_contracts_report_an_upward_import_and_runtime_imports_of_evaluate(toy):
    res = run_contracts(toy / ".importlinter", toy)
    assert res.returncode != 0
    out = " ".join(res.stdout.split())
    assert "toy layers BROKEN" in out and "toy.low is not allowed to import toy.high" in out
    assert "toy.low -> toy.high (l.2)" in out  # the function-local import counts
    assert "toy runtime never imports evaluate BROKEN" in out
    assert "toy.runtime is not allowed to import toy.evaluate" in out  # under TYPE_CHECKING too


def test_the_checks_pass_a_clean_package(tmp_path):
    """No false alarms: the toy package without its violations passes both checks."""
    clean = {k: v for k, v in TOY.items() if k in ("__init__.py", "base.py", "high.py", "helper.py", "evaluate/__init__.py")}
    clean["low.py"] = "from toy.base import VALUE\n"
    clean["runtime.py"] = "from toy.base import VALUE\n"
    for name, text in clean.items():
        path = tmp_path / "toy" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / ".importlinter").write_text(TOY_CONTRACTS)
    found = scan(tmp_path / "toy")
    assert not found.cycles() and not found.private and not found.imports_of("toy.evaluate", ())
    res = run_contracts(tmp_path / ".importlinter", tmp_path)
    assert res.returncode == 0, textwrap.shorten(res.stdout, 2000)
