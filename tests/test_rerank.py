"""Rerank: saliency fusion, the verifier's P(yes) from log-probs, frame picking; explanations' evidence."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from langchain_core.messages import AIMessage

from grounding_agent.agent.rerank import (
    NEUTRAL_P_YES,
    Reranker,
    VLMVerifier,
    clip_frames,
    p_yes_from_top_logprobs,
)
from grounding_agent.errors import ConfigError
from grounding_agent.types import Curve, Frames, Moment, Video
from tests.agent_doubles import CurveSaliencyForTests, scripted_chat

VIDEO = Video(Path("clip.mp4"), duration_s=20.0, avg_fps=10.0, num_frames=200, width=8, height=6)


def frames_every(step_s: float) -> Frames:
    times = np.arange(0.0, VIDEO.duration_s, step_s)
    pixels = np.zeros((len(times), 6, 8, 3), np.uint8)
    pixels[:, 0, 0, 0] = np.arange(len(times))  # tag each frame
    return Frames(
        VIDEO, pixels, times, (times * 10).astype(int), 1 / step_s, 1 / step_s, (0.0, VIDEO.duration_s)
    )


def lp(p: float) -> float:
    return math.log(p)


def test_p_yes_normalises_over_yes_and_no():
    top = [
        {"token": " Yes", "logprob": lp(0.6)},
        {"token": "no", "logprob": lp(0.2)},
        {"token": "maybe", "logprob": lp(0.2)},
    ]
    assert p_yes_from_top_logprobs(top) == pytest.approx(0.75)
    top = [
        {"token": "yes", "logprob": lp(0.3)},
        {"token": "Yes.", "logprob": lp(0.3)},
        {"token": "No", "logprob": lp(0.2)},
    ]
    assert p_yes_from_top_logprobs(top) == pytest.approx(0.75)
    assert p_yes_from_top_logprobs([{"token": "the", "logprob": lp(0.9)}]) is None


def test_clip_frames_picks_evenly_inside_without_decoding():
    frames = frames_every(0.5)
    picked = clip_frames(frames, Moment(4.0, 8.0), 4)
    assert len(picked) == 4
    assert picked.timestamps_s[0] == 4.0 and picked.timestamps_s[-1] == 8.0
    assert np.all((picked.timestamps_s >= 4.0) & (picked.timestamps_s <= 8.0))
    # A clip shorter than the frame step gets the nearest frame.
    short = clip_frames(frames, Moment(4.6, 4.7), 4)
    assert list(short.timestamps_s) == [4.5]
    assert clip_frames(None, Moment(1, 2), 4) is None


def test_saliency_fusion_reorders_and_records_evidence():
    times = np.arange(0.0, 20.0, 1.0)
    values = np.where((times >= 12) & (times <= 15), 0.9, 0.1)  # the query matches 12-15 s
    saliency = CurveSaliencyForTests(Curve("clip", times, values))
    moments = [Moment(2, 5, 0.6), Moment(12, 15, 0.5)]
    ranked = Reranker(saliency=saliency).rerank(VIDEO, ["q", "q"], moments)
    best = ranked[0]
    assert (best.moment.start_s, best.moment.end_s, best.index) == (12, 15, 1)
    assert best.grounder_score == 0.5 and 12 <= best.saliency.features.peak_time_s <= 15
    assert best.moment.score == pytest.approx(best.saliency.fused_score) and best.moment.score != 0.5
    assert best.saliency.features.contrast > 0 > ranked[1].saliency.features.contrast
    assert best.moment.explanation is None  # the evidence is typed, not smuggled through the moment
    kinds = [(e.kind, e.score) for e in best.evidence()]
    assert kinds == [("grounder", 0.5), ("saliency", best.saliency.fused_score)]
    assert len(saliency.calls) == 1  # one curve per distinct query


def test_rerank_needs_one_query_per_moment():
    with pytest.raises(ConfigError, match="one query per moment"):
        Reranker().rerank(VIDEO, ["q"], [Moment(0, 1), Moment(2, 3)])


def answer(token: str, p_yes: float, p_no: float) -> AIMessage:
    top = [{"token": "yes", "logprob": lp(p_yes)}, {"token": "no", "logprob": lp(p_no)}]
    return AIMessage(
        content=token, response_metadata={"logprobs": {"content": [{"token": token, "top_logprobs": top}]}}
    )


def test_verifier_reads_p_yes_and_sends_the_clip_frames():
    chat = scripted_chat(answer("yes", 0.8, 0.2))
    verifier = VLMVerifier(chat, num_frames=3)
    got = verifier.verify(VIDEO, "person opens the door", Moment(4, 8), frames_every(1.0))
    assert got.p_yes == pytest.approx(0.8) and got.answer == "yes" and got.frames_s == [4.0, 6.0, 8.0]
    messages, kwargs = chat.seen[0]
    parts = messages[-1].content
    assert sum(p["type"] == "image_url" for p in parts) == 3
    assert "person opens the door" in parts[-1]["text"]
    assert kwargs["logprobs"] is True and kwargs["max_tokens"] == 1


def test_verifier_without_yes_no_alternatives_is_neutral():
    msg = AIMessage(content="the", response_metadata={})
    verifier = VLMVerifier(scripted_chat(msg), num_frames=2)
    assert verifier.verify(VIDEO, "q", Moment(1, 3), frames_every(1.0)).p_yes == NEUTRAL_P_YES


def test_verifier_weight_and_budget():
    chat = scripted_chat(answer("no", 0.1, 0.9), answer("yes", 0.9, 0.1))
    reranker = Reranker(verifier=VLMVerifier(chat, num_frames=1), verifier_weight=0.5, max_verify=2)
    moments = [Moment(0, 2, 0.8), Moment(5, 7, 0.6), Moment(10, 12, 0.4)]
    timings: dict[str, float] = {}
    ranked = reranker.rerank(VIDEO, ["q"] * 3, moments, frames_every(1.0), timings)
    by_start = {r.moment.start_s: r for r in ranked}
    assert by_start[0].moment.score == pytest.approx(0.5 * 0.8 + 0.5 * 0.1)
    assert by_start[5].moment.score == pytest.approx(0.5 * 0.6 + 0.5 * 0.9)
    assert by_start[10].moment.score == pytest.approx(0.5 * 0.4 + 0.5 * NEUTRAL_P_YES)  # beyond max_verify
    assert by_start[10].verifier is None and by_start[5].verifier.p_yes == pytest.approx(0.9)
    assert [e.kind for e in by_start[5].evidence()] == ["grounder", "verifier"]
    assert ranked[0].moment.start_s == 5 and len(chat.seen) == 2 and timings["verifier"] >= 0
