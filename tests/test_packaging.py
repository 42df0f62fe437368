"""The wheel ships prompts/ and schemas/ as package data: build it, install it elsewhere, use them from there."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_prompts_render_from_installed_wheel(tmp_path):
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheel_dir), str(REPO)], check=True
    )
    (wheel,) = wheel_dir.glob("grounding_agent-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    code = textwrap.dedent(
        """
        import grounding_agent, grounding_agent.utils.prompts as P
        d = P.prompts_dir()
        assert str(d).startswith(SITE), d
        names = P.available_prompts()
        assert names, "no prompts in the wheel"
        for name in names:
            p = P.load_prompt(name)
            for part in p.templates:
                text = p.render(part, **{v: 1 for v in p.variables(part)})  # 1 fits text and number slots
                assert text, (name, part)
        from grounding_agent.agent.planner import plan_schema
        assert plan_schema()["type"] == "object"
        import importlib.resources as R
        assert (R.files("grounding_agent") / "schemas" / "prediction.schema.json").is_file()
        print(len(names))
        """
    ).replace("SITE", repr(str(site)))
    env = {**os.environ, "PYTHONPATH": str(site)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.strip()) >= 1
