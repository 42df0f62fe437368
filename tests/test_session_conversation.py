"""The acceptance conversation: five scripted turns through `grounding-agent chat --jsonl`, checked from outside.

Every follow-up's moments obey its reference (after -> start >= previous end; before -> end <= previous
start), every reply has text, every line validates against schemas/answer.schema.json. Run once with the
model-free `uniform` backend and once against the live tiny vLLM server (its text is the tiny random
model's own, garbage but real).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

REPO = Path(__file__).resolve().parents[1]
ANSWER_SCHEMA = json.loads((REPO / "schemas" / "answer.schema.json").read_text())
CLIP = "timer1_charades_OHOFG.mp4"
FPS = 0.5  # sampled frame interval 2 s

# (message, the reference it makes: None / "after" / "before")
SCRIPT = [
    ("When does the person open the door?", None),
    ("What happens after that?", "after"),
    ("And before that, when does he pick something up?", "before"),
    ("Does he do it again?", "after"),
    ("What does he do right after?", "after"),
]


def chat_jsonl(video: Path, backend_args: list[str], timeout_s: float) -> list[dict]:
    lines = "".join(json.dumps({"message": m}) + "\n" for m, _ in SCRIPT)
    cmd = [
        str(Path(sys.executable).parent / "grounding-agent"),
        "chat",
        str(video),
        "--jsonl",
        "--fps",
        str(FPS),
        *backend_args,
    ]
    out = subprocess.run(cmd, input=lines, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(replies) == len(SCRIPT), out.stdout
    return replies


def check_conversation(replies: list[dict], duration_s: float) -> None:
    interval_s = 1.0 / FPS
    for i, ((message, reference), reply) in enumerate(zip(SCRIPT, replies)):
        assert "error" not in reply, (message, reply)
        jsonschema.validate(reply, ANSWER_SCHEMA)
        assert reply["text"].strip(), message
        if reference is None:
            assert reply["moments"], message
            continue
        # "that" is the last thing found: the best moment of the latest earlier reply that has one.
        earlier = [r for r in replies[:i] if r["moments"]]
        assert earlier, f"turn {i} has nothing to refer to"
        prev = earlier[-1]["moments"][0]
        assert reply["reference"]["previous"] == pytest.approx([prev["start_s"], prev["end_s"]])
        moments = reply["moments"]
        if reference == "after":
            assert all(m["start_s"] >= prev["end_s"] - 1e-6 for m in moments), (message, prev, moments)
            room_s = duration_s - prev["end_s"]
        else:
            assert all(m["end_s"] <= prev["start_s"] + 1e-6 for m in moments), (message, prev, moments)
            room_s = prev["start_s"]
        # No moment only when the reference leaves less than one frame interval of video.
        assert moments or room_s < interval_s, (message, prev, reply["text"])
        assert reply["reference"]["kind"] in (reference, "again")


def test_five_turns_with_the_uniform_backend(real_clips) -> None:
    from grounding_agent import open_video

    video = real_clips[CLIP]
    replies = chat_jsonl(video, ["--backend", "uniform"], timeout_s=120)
    check_conversation(replies, open_video(video).duration_s)
    assert all(r["text_source"] == "template" for r in replies)
    assert all(r["moments"] for r in replies)  # uniform windows tile the video: every reference has room


@pytest.mark.slow
@pytest.mark.integration
def test_five_turns_through_the_live_vllm_server(real_clips, vllm_server) -> None:
    from grounding_agent import open_video

    video = real_clips[CLIP]
    backend = ["--backend", "vllm", "--server", vllm_server.base_url, "--model", vllm_server.model,
               "--max-frames", "8", "--structured", "--no-agent"]  # fmt: skip
    replies = chat_jsonl(video, backend, timeout_s=600)
    check_conversation(replies, open_video(video).duration_s)
    # The text of grounded turns is the served model's own answer to the describe/answer prompt.
    assert any(r["text_source"] == f"vlm:{vllm_server.model}" for r in replies)
    assert not any(r["text_source"] == "template" for r in replies)
