"""The layout the architecture doc describes: packages by job, small modules, the library above no recipe."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grounding_agent"
CORE_MODULES = {"__init__.py", "types.py", "errors.py", "io.py"}
MAX_LINES = 500


def test_top_level_holds_packages_and_the_core_modules_only():
    modules = {p.name for p in PACKAGE.glob("*.py")}
    assert modules <= CORE_MODULES, f"move these into a package by job: {sorted(modules - CORE_MODULES)}"
    packages = [p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert all((p / "__init__.py").is_file() for p in packages), "every folder is a package"


def test_every_package_says_what_it_owns_and_may_import():
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        assert len(doc.split()) >= 12, f"{init.parent.name}: a docstring saying what the package owns"
        assert "may import" in doc.lower(), f"{init.parent.name}: the docstring says what it may import"


def test_no_module_over_the_line_limit():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"split these by job (> {MAX_LINES} lines): {long}"


def test_the_library_never_imports_the_recipes():
    recipes = {"eval", "finetune", "bench", "tests"}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in recipes]
    assert not offenders, offenders
