"""Optional dependencies: check an extra is installed *before* any work starts, in one line.

    require("agent", "langgraph")        # raises MissingDependencyError naming the extra to install

The check finds the module without importing it (cheap enough to run before every command).
"""

from __future__ import annotations

import importlib.util

from grounding_agent.errors import MissingDependencyError

# What each feature needs, and the extra (pyproject.toml) that installs it.
AGENT = ("agent", ("langgraph", "langchain_core"))
LLM_CHAT = ("agent", ("langchain_core", "langchain_openai"))
PLOT = ("saliency", ("matplotlib",))
HF = ("hf", ("torch", "transformers"))
CLIENT = ("client", ("httpx2", "tenacity"))
LIBRARY = ("library", ("sqlite_vec", "pysqlite3", "faiss"))
TEAM = ("team", ("psycopg",))
RAY = ("ray", ("ray",))


def missing(*modules: str) -> list[str]:
    """The modules of `modules` that cannot be imported here (not installed, or blocked)."""
    out = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package is missing, or the module is blocked
            found = False
        if not found:
            out.append(name)
    return out


def require(extra: str, *modules: str, feature: str = "") -> None:
    """Raise `MissingDependencyError` (one line, naming the extra) unless every module is importable.

    Args:
        extra: the pyproject extra that installs them, e.g. "agent".
        modules: top-level import names, e.g. "langgraph".
        feature: what needs them, for the message, e.g. "--verify".
    """
    gone = missing(*modules)
    if gone:
        what = f"{feature} needs" if feature else "needs"
        raise MissingDependencyError(
            f"{what} {', '.join(gone)}, which {'is' if len(gone) == 1 else 'are'} not installed: "
            f"pip install 'grounding-agent[{extra}]'"
        )


def require_spec(spec: tuple[str, tuple[str, ...]], feature: str = "") -> None:
    """`require` for one of the specs above (AGENT, LLM_CHAT, PLOT, HF, CLIENT)."""
    extra, modules = spec
    require(extra, *modules, feature=feature)


def require_all(needs: list[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]]) -> None:
    """Check several features at once; one line per extra names every feature and module it lacks.

    Args:
        needs: (feature, specs) pairs, e.g. [("--verify", (LLM_CHAT,)), ("--agent", (AGENT,))].
    """
    by_extra: dict[str, tuple[list[str], list[str]]] = {}
    for feature, specs in needs:
        for extra, modules in specs:
            gone = missing(*modules)
            if gone:
                features, names = by_extra.setdefault(extra, ([], []))
                if feature not in features:
                    features.append(feature)
                names.extend(m for m in gone if m not in names)
    for extra, (features, names) in by_extra.items():
        raise MissingDependencyError(
            f"{' and '.join(features)} need{'s' if len(features) == 1 else ''} {', '.join(names)}, "
            f"which {'is' if len(names) == 1 else 'are'} not installed: "
            f"pip install 'grounding-agent[{extra}]'"
        )
