"""Every ```python block in README.md, `docs/*.md` and `bench/README.md` runs, against the tiny models (or is in
`NOT_RUN`, keyed by page and first line, with the reason; today nothing is).

Names the README uses are mapped to test assets: `clip.mp4` -> a real clip (other input videos: generated
ones), the hub model id -> the tiny
random-weight Qwen2.5-VL, the vLLM URL -> a scripted OpenAI-compatible chat server on 127.0.0.1 (a test
double that only decides which tools to call; the tools run the real Session).
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from tests.videogen import make_edit_video

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
# (page, first line of the block) -> why no test runs it. Stale entries fail `test_not_run_entries_exist`.
NOT_RUN: dict[tuple[str, str], str] = {}


def _blocks() -> list[tuple[str, str]]:
    """(where, code) of every ```python block of the pages, in order; README's first."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"```python\n(.*?)```", text, re.DOTALL):
            line = text.count("\n", 0, match.start()) + 1
            found.append((f"{path.relative_to(REPO)}:{line}", match.group(1)))
    return found


ALL_BLOCKS = _blocks()
README_BLOCKS = [code for where, code in ALL_BLOCKS if where.startswith("README.md:")]


def _skipped(where: str, code: str) -> str | None:
    return NOT_RUN.get((where.split(":")[0], code.strip().splitlines()[0]))


RUN = [(where, code) for where, code in ALL_BLOCKS if _skipped(where, code) is None]
README_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
README_SERVER = "http://127.0.0.1:8000/v1"


def scripted_openai_server_for_tests():
    """A chat-completions endpoint that calls ground_moments, then ask_video, then answers (test double)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(body: dict) -> dict:
        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        script = [("ground_moments", {"query": "the person opens the door"}),
                  ("ask_video", {"message": "what does he do right after that?"})]  # fmt: skip
        if len(tool_results) < len(script):
            name, args = script[len(tool_results)]
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call{len(tool_results)}", "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args)}}]}  # fmt: skip
            finish = "tool_calls"
        else:
            message, finish = (
                {"role": "assistant", "content": "scripted: " + tool_results[-1]["content"][:80]},
                "stop",
            )
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip

    return app


@pytest.fixture(scope="module")
def chat_server():
    import uvicorn

    from grounding_agent.grounders.serving import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(scripted_openai_server_for_tests(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "scripted chat server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)


def test_readme_has_the_python_examples() -> None:
    assert README_BLOCKS and "session.ask" in README_BLOCKS[0]
    assert (
        len([line for line in README_BLOCKS[0].splitlines() if line.strip()]) <= 5
    )  # "a 5-line Python example"
    codes = [code for _, code in ALL_BLOCKS]
    assert any("build_chat_agent" in c for c in codes) and any("plan_edit" in c for c in codes)


def test_not_run_entries_exist() -> None:
    """Every skip names a block that is still there (a removed block must not leave a reason behind)."""
    shown = {(where.split(":")[0], code.strip().splitlines()[0]) for where, code in ALL_BLOCKS}
    assert set(NOT_RUN) <= shown, set(NOT_RUN) - shown


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(RUN)), ids=[where for where, _ in RUN])
def test_readme_python_block_runs(
    index, real_clips, tiny_models, chat_server, capsys, tmp_path, monkeypatch
) -> None:
    # Each block runs in a fresh folder (files it writes land there) holding the videos it names: `clip.mp4` is
    # a real Charades clip; any other (e.g. the editing example's talk) a generated 25 fps clip with silences.
    monkeypatch.chdir(tmp_path)
    where, block = RUN[index]
    for name in set(re.findall(r'"([\w./-]+\.(?:mp4|mkv|mov))"', block)):
        target = tmp_path / name
        if target.exists():
            continue  # an output file the block writes, named after an input
        target.parent.mkdir(parents=True, exist_ok=True)
        if name == "clip.mp4":
            target.symlink_to(real_clips["timer1_charades_OHOFG.mp4"])
        elif not re.search(r"(?:_cut|_out|render)", name):
            make_edit_video(target)
    code = block.replace(f'"{README_MODEL}"', repr(str(tiny_models["qwen2_5_vl"])))
    code = code.replace(f'"{README_SERVER}"', repr(chat_server))
    assert README_MODEL not in code and README_SERVER not in code
    exec(compile(code, f"{where} python block", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    if "print(" in code:
        assert out.strip()
    for name in re.findall(r'"([\w./-]+\.(?:mp4|mkv|mov|edl|otio|xml|fcpxml|srt|json|png))"', code):
        assert (tmp_path / name).exists(), f"the block names {name} but it was not there after it ran"
    if "build_chat_agent" in code:
        assert (
            out.startswith("scripted: ") and '"text"' in out
        )  # the agent's final text quotes ask_video's answer
