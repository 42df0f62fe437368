"""The package's data files: prompt templates in `prompts/` (rendered strictly) and JSON schemas in
`schemas/`, both shipped inside the wheel (and read from the source checkout when not installed).

Each `prompts/NAME.yaml` has `version`, `description`, and one or more Jinja2 templates under
`templates:` (e.g. `system`, `user`). Rendering fails on a missing variable *and* on an unexpected
one, so a renamed variable can never silently drop out of a prompt.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import yaml

from grounding_agent.errors import ConfigError, PromptError

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


def _data_dir(name: str) -> Path | None:
    """A data folder ("prompts", "schemas"): inside the installed package, else the source checkout's."""
    packaged = resources.files("grounding_agent") / name
    if packaged.is_dir():
        return Path(str(packaged))
    source = Path(__file__).resolve().parents[2] / name
    return source if source.is_dir() else None


def prompts_dir() -> Path:
    """The prompts folder: inside the installed package, else the source checkout's top-level `prompts/`."""
    found = _data_dir("prompts")
    if found is None:
        raise PromptError("no prompts/ folder found next to the package; reinstall grounding-agent")
    return found


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON schema `schemas/NAME.schema.json` (e.g. "plan", "prediction").

    Raises:
        ConfigError: the schema file is missing (a broken install).
    """
    folder = _data_dir("schemas")
    path = folder / f"{name}.schema.json" if folder is not None else None
    if path is None or not path.is_file():
        raise ConfigError(
            f"schemas/{name}.schema.json not found next to the package; reinstall grounding-agent"
        )
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    description: str
    templates: dict[str, str]

    def variables(self, part: str) -> set[str]:
        return _variables(self.templates[part])

    def render(self, part: str = "user", **variables: Any) -> str:
        """Render one template part with exactly the variables it uses.

        Raises:
            PromptError: unknown part, missing variable, or unexpected variable.
        """
        if part not in self.templates:
            raise PromptError(f"prompt {self.name!r} has no part {part!r} (has {sorted(self.templates)})")
        expected = self.variables(part)
        missing, extra = expected - variables.keys(), variables.keys() - expected
        if missing or extra:
            raise PromptError(
                f"prompt {self.name}.{part} v{self.version}: missing {sorted(missing)}, unexpected {sorted(extra)}"
            )
        return _compile(self.templates[part]).render(**variables).strip()


# Compiling a template costs ~50 ms; prompts are rendered per query, so compile each source once.
@functools.lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


@functools.lru_cache(maxsize=256)
def _variables(source: str) -> frozenset[str]:
    return frozenset(jinja2.meta.find_undeclared_variables(_ENV.parse(source)))


@functools.cache
def load_prompt(name: str) -> Prompt:
    """Load `prompts/NAME.yaml`.

    Raises:
        PromptError: the file is missing or not a valid prompt file.
    """
    path = prompts_dir() / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.stem for p in prompts_dir().glob("*.yaml"))
        raise PromptError(f"no prompt named {name!r}; available: {available}")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        raise PromptError(f"{path}: a prompt file needs a 'templates:' mapping")
    return Prompt(
        name, str(data.get("version", "0")), str(data.get("description", "")), dict(data["templates"])
    )


def available_prompts() -> list[str]:
    return sorted(p.stem for p in prompts_dir().glob("*.yaml"))
