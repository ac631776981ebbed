"""The dependency rules of the layout (README "Layout"), checked on every import statement.

recipes -> cookbook, renderers, evals; evals -> cookbook, renderers; cookbook never imports
recipes or evals; renderers import nothing of ours; only cookbook/backend/ reaches the local
backend; loops (cookbook/supervised, rl, preference, distill) import neither each other nor a
backend; cookbook/tiny and the shared leaves import nothing of ours they should not. tests/ and
bench/ are exempt.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cookbook", "renderers", "recipes", "evals")
OURS = (*PACKAGES, "configs")
LOOPS = ("supervised", "rl", "preference", "distill")
ALLOWED_LOOP_IMPORTS = {("distill", "rl")}  # on-policy distillation builds on RL rollouts


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of every module imported anywhere in the file (relative imports resolved)."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)  # "from pkg import submodule"
    return found


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
GRAPH = {module_name(p): imports_of(p) for p in SOURCES}


def violations(rule, graph: dict[str, set[str]] = GRAPH) -> list[str]:
    return sorted(f"{mod} imports {imp}" for mod, imps in graph.items() for imp in imps if rule(mod, imp))


def test_the_graph_covers_every_package():
    assert {m.split(".")[0] for m in GRAPH} == set(PACKAGES)
    assert "cookbook.backend" in GRAPH["cookbook.config"]  # the resolver sees absolute imports
    assert "cookbook.backend.local.ServiceClient" in GRAPH["cookbook.backend"]  # and relative, lazy ones


def test_relative_imports_resolve():
    assert imports_of(ROOT / "cookbook" / "backend" / "local" / "model.py") >= {"cookbook.backend.local.lora",
                                                                                "cookbook.tiny"}


@pytest.mark.parametrize("rule,check", [
    ("cookbook never imports recipes or evals",
     lambda mod, imp: within(mod, "cookbook") and (within(imp, "recipes") or within(imp, "evals"))),
    ("evals never import recipes", lambda mod, imp: within(mod, "evals") and within(imp, "recipes")),
    ("renderers import nothing of ours",
     lambda mod, imp: within(mod, "renderers") and any(within(imp, p) for p in OURS if p != "renderers")),
    ("only cookbook.backend reaches the local backend",
     lambda mod, imp: within(imp, "cookbook.backend.local") and not within(mod, "cookbook.backend.local")
     and mod != "cookbook.backend"),
    ("cookbook.tiny is a leaf", lambda mod, imp: within(mod, "cookbook.tiny") and any(within(imp, p) for p in OURS)
     and not within(imp, "cookbook.tiny")),
    ("the seam and the errors are leaves",
     lambda mod, imp: mod in ("cookbook.primitives", "cookbook.errors") and any(within(imp, p) for p in OURS)),
])
def test_dependency_rule(rule, check):
    assert violations(check) == [], rule


def test_loops_import_neither_each_other_nor_a_backend():
    def bad(mod: str, imp: str) -> bool:
        loop = next((lp for lp in LOOPS if within(mod, f"cookbook.{lp}")), None)
        if loop is None:
            return False
        if within(imp, "cookbook.backend"):
            return True  # clients come through cookbook.config.make_service, typed by cookbook.primitives
        other = next((lp for lp in LOOPS if within(imp, f"cookbook.{lp}")), None)
        return other is not None and other != loop and (loop, other) not in ALLOWED_LOOP_IMPORTS
    assert violations(bad) == []


def test_the_checker_reports_a_violation():
    fake = {"cookbook.fake": {"recipes.sl.chat_sft", "cookbook.tiny"}, "recipes.fake": {"cookbook.backend.local"}}
    assert violations(lambda mod, imp: within(mod, "cookbook") and within(imp, "recipes"), fake) == [
        "cookbook.fake imports recipes.sl.chat_sft"]
    assert violations(lambda mod, imp: within(imp, "cookbook.backend.local"), fake) == [
        "recipes.fake imports cookbook.backend.local"]
