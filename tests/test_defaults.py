"""Defaults live in `grounding_agent.defaults`: the CLI and the library read them from there.

Two checks over the source (AST): no CLI option's `default=` is a numeric literal (it names a field of
`grounding_agent.defaults`), and no library function repeats, as its parameter's default, the literal that a
`grounding_agent.defaults` field of the same name owns (`fps: float = 2.0` beside `SAMPLING.fps`).
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from grounding_agent import defaults

ROOT = Path(__file__).resolve().parents[1]
CLI_FILES = sorted((ROOT / "grounding_agent" / "cli").glob("*.py")) + sorted((ROOT / "eval").glob("*.py"))
LIBRARY_FILES = [
    p for p in (ROOT / "grounding_agent").rglob("*.py") if "defaults" not in p.relative_to(ROOT).parts
]


def owned() -> dict[str, set[object]]:
    """field or constant name -> the values `grounding_agent.defaults` gives it (numbers only: strings are names)."""
    out: dict[str, set[object]] = {}
    for name, value in vars(defaults).items():
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                v = getattr(value, field.name)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    out.setdefault(field.name, set()).add(v)
        elif name.isupper() and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.setdefault(name.lower(), set()).add(value)
    return out


def _number(node: ast.expr | None) -> float | None:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _number(node.operand)
        return None if inner is None else -inner
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float))
        and not isinstance(node.value, bool)
    ):
        return node.value
    return None


def cli_literal_defaults() -> list[str]:
    found = []
    for path in CLI_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
                for kw in node.keywords:
                    if kw.arg == "default" and _number(kw.value) is not None:
                        flag = next((a.value for a in node.args if isinstance(a, ast.Constant)), "?")
                        found.append(f"{path.name}:{node.lineno} {flag} default={_number(kw.value)}")
    return found


def library_repeats() -> list[str]:
    names = owned()
    found = []
    for path in LIBRARY_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            args = node.args
            positional = args.posonlyargs + args.args
            pairs = list(zip(positional[len(positional) - len(args.defaults) :], args.defaults, strict=True))
            pairs += [(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True) if d is not None]
            for arg, default in pairs:
                value = _number(default)
                if value is not None and value in names.get(arg.arg, set()):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}({arg.arg}={value})")
    return found


def test_the_checks_see_defaults():
    assert 2.0 in owned()["fps"] and 32 in owned()["max_frames"]
    tree = ast.parse("def f(fps=2.0, *, top_k=5): ...")
    fn = tree.body[0]
    assert _number(fn.args.defaults[0]) == 2.0 and _number(fn.args.kw_defaults[0]) == 5


def test_no_cli_option_default_is_a_literal():
    found = cli_literal_defaults()
    assert not found, "read these from grounding_agent.defaults: " + "; ".join(found)


def test_no_library_default_repeats_a_literal_defaults_owns():
    found = library_repeats()
    assert not found, "use the grounding_agent.defaults field instead: " + "; ".join(found)
