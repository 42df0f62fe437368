"""Rerank composed moments: grounder confidence fused with CLIP saliency features and a VLM verifier.

Saliency (`rerank_features.fuse`) says how much a window stands out from the rest of the video for the
query; the optional verifier asks the served VLM "does this clip show: ...? yes or no" over a few of the
clip's frames and reads P(yes) from the first token's log-probs (VideoMind's verifier role).

    final = (1 - verifier_weight) * fused + verifier_weight * P(yes)

Moments beyond the first `max_verify` get the neutral P(yes) = 0.5 so scales stay comparable.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from grounding_agent.agent.llm import invoke_chat, message_text
from grounding_agent.agent.rerank_features import (
    FusionWeights,
    SpeechFeatures,
    WindowFeatures,
    fuse,
    fuse_speech,
    speech_features,
    window_features,
)  # fmt: skip
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.base import timed
from grounding_agent.types import Evidence, Frames, Moment, Video
from grounding_agent.utils.prompts import load_prompt

NEUTRAL_P_YES = 0.5


@dataclass(frozen=True)
class VerifierAnswer:
    """What the verifier said about one clip. `p_yes` = P(yes) / (P(yes) + P(no)) over the first token."""

    p_yes: float
    answer: str
    frames_s: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "p_yes": round(self.p_yes, 4),
            "answer": self.answer,
            "frames_s": [round(t, 2) for t in self.frames_s],
        }


def p_yes_from_top_logprobs(top: Sequence[dict[str, Any]]) -> float | None:
    """P(yes) normalised over yes/no from one token's top log-probs; None if neither is among them."""
    yes = no = 0.0
    for entry in top:
        word = str(entry.get("token", "")).strip().strip(".").lower()
        p = math.exp(float(entry.get("logprob", -math.inf)))
        if word == "yes":
            yes += p
        elif word == "no":
            no += p
    return yes / (yes + no) if yes + no > 0 else None


def clip_frames(frames: Frames | None, moment: Moment, num_frames: int) -> Frames | None:
    """Up to `num_frames` of the already-sampled `frames` inside the moment, evenly spread (no decoding)."""
    if frames is None or len(frames) == 0:
        return None
    inside = np.flatnonzero((frames.timestamps_s >= moment.start_s) & (frames.timestamps_s <= moment.end_s))
    if len(inside) == 0:  # a clip shorter than the sampling step: the frame nearest its centre
        centre = 0.5 * (moment.start_s + moment.end_s)
        inside = np.array([int(np.argmin(np.abs(frames.timestamps_s - centre)))])
    keep = inside[np.linspace(0, len(inside) - 1, min(num_frames, len(inside))).round().astype(int)]
    return frames.subset(np.unique(keep))


class VLMVerifier:
    """Asks a served VLM whether a clip shows the query, through a LangChain chat model.

    Args:
        chat_model: e.g. `ChatOpenAI` on the vLLM endpoint (see `llm.chat_model`); log-probs are bound here.
        num_frames: frames of the clip shown (timestamped images).
        top_logprobs: alternatives read for the first token.
    """

    def __init__(self, chat_model: Any, *, num_frames: int = 4, top_logprobs: int = 10):
        if num_frames < 1:
            raise ConfigError(f"num_frames must be >= 1, got {num_frames}")
        self.model = chat_model.bind(logprobs=True, top_logprobs=top_logprobs, max_tokens=1, temperature=0.0)
        self.num_frames = num_frames
        self.prompt = load_prompt("verifier")
        self.calls = 0

    def _frames(self, video: Video, moment: Moment, frames: Frames | None) -> Frames:
        picked = clip_frames(frames, moment, self.num_frames)
        if picked is not None:
            return picked
        from grounding_agent.media.decode import sample_frames

        return sample_frames(
            video,
            max_frames=self.num_frames,
            start_s=moment.start_s,
            end_s=max(moment.end_s, moment.start_s + 1e-3),
        )

    def messages(self, query: str, frames: Frames) -> list[Any]:
        from langchain_core.messages import HumanMessage, SystemMessage

        from grounding_agent.grounders.qwen_inputs import encode_image, frame_label

        content: list[dict[str, Any]] = []
        for t, pixels in zip(frames.timestamps_s, frames.pixels):
            content.append({"type": "text", "text": frame_label(float(t))})
            content.append({"type": "image_url", "image_url": {"url": encode_image(pixels)}})
        content.append({"type": "text", "text": self.prompt.render("user", query=query)})
        return [SystemMessage(self.prompt.render("system")), HumanMessage(content=content)]

    def verify(
        self, video: Video, query: str, moment: Moment, frames: Frames | None = None
    ) -> VerifierAnswer:
        clip = self._frames(video, moment, frames)
        msg = invoke_chat(self.model, self.messages(query, clip), what="verifier")
        self.calls += 1
        answer = message_text(msg).strip()
        content = (msg.response_metadata.get("logprobs") or {}).get("content") or []
        p = p_yes_from_top_logprobs(content[0].get("top_logprobs", [])) if content else None
        if p is None:  # no yes/no among the alternatives: read the answer itself, else stay neutral
            word = answer.lower().strip(" .")
            p = 1.0 if word == "yes" else 0.0 if word == "no" else NEUTRAL_P_YES
        return VerifierAnswer(p, answer, [float(t) for t in clip.timestamps_s])


@dataclass(frozen=True)
class SaliencyEvidence:
    """What the saliency curve said about one moment and the score fused from it."""

    features: WindowFeatures
    fused_score: float

    def to_dict(self) -> dict[str, Any]:
        feats = {k: round(v, 4) if isinstance(v, float) else v for k, v in self.features.to_dict().items()}
        return {**feats, "fused_score": round(self.fused_score, 4)}


@dataclass(frozen=True)
class Reranked:
    """One rescored moment and why: its position in the input, the grounder's score, each channel's say.

    Attributes:
        index: the moment's position in the list given to `Reranker.rerank`.
        moment: the moment with its final score (explanation untouched).
        grounder_score: its score before reranking.
        saliency: the saliency features and fused score (None without a saliency model).
        verifier: the verifier's answer (None when not verified: no verifier, or beyond `max_verify`).
    """

    index: int
    moment: Moment
    grounder_score: float
    saliency: SaliencyEvidence | None = None
    verifier: VerifierAnswer | None = None
    speech: SpeechFeatures | None = None  # the words spoken in the window vs the query (with a transcript)

    def evidence(self) -> list[Evidence]:
        """The channels that spoke for this moment, as core `Evidence`."""
        m = self.moment
        out = [Evidence("grounder", m.start_s, m.end_s, score=self.grounder_score)]
        if self.saliency is not None:
            peak = self.saliency.features.peak_time_s
            out.append(
                Evidence(
                    "saliency",
                    m.start_s,
                    m.end_s,
                    score=self.saliency.fused_score,
                    text=f"peak at {peak:.2f} s",
                )
            )
        if self.verifier is not None:
            out.append(
                Evidence("verifier", m.start_s, m.end_s, score=self.verifier.p_yes, text=self.verifier.answer)
            )
        if self.speech is not None and self.speech.said:
            out.append(
                Evidence("speech", m.start_s, m.end_s, score=self.speech.match, text=f'"{self.speech.said}"')
            )
        return out


@dataclass
class Reranker:
    """Fuses grounder confidence, CLIP saliency and (optionally) the verifier's P(yes).

    Attributes:
        saliency: a `ClipSaliency` (anything with `curve(path_or_frames, query, fps=) -> Curve`), optional.
        verifier: a `VLMVerifier`, optional.
        weights: fusion weights of confidence and saliency features.
        verifier_weight: share of P(yes) in the final score.
        saliency_fps: frames per second of the saliency curve (embeddings are cached per video and fps).
        max_verify: verifier calls per query (the best moments after saliency fusion).
    """

    saliency: Any = None
    verifier: VLMVerifier | None = None
    weights: FusionWeights = field(default_factory=FusionWeights)
    verifier_weight: float = 0.5
    saliency_fps: float = 1.0
    max_verify: int = 3
    speech: Any = None  # a transcriber (`.transcribe(video) -> speech.Transcript`): rerank by words spoken
    speech_weight: float = 0.3

    def rerank(
        self,
        video: Video,
        queries: Sequence[str],
        moments: Sequence[Moment],
        frames: Frames | None = None,
        timings_s: dict[str, float] | None = None,
    ) -> list[Reranked]:
        """Rescore `moments` (each against its own query text), best first, each with its evidence.

        Args:
            frames: frames already sampled from the video; the verifier picks the clip's frames from them.
            timings_s: if given, gains "saliency" and "verifier" seconds (model time for benchmarks).
        """
        timings_s = {} if timings_s is None else timings_s
        if len(queries) != len(moments):
            raise ConfigError(f"rerank needs one query per moment, got {len(queries)} for {len(moments)}")
        curves: dict[str, Any] = {}
        transcript = self.speech.transcribe(video) if self.speech is not None else None
        scored: list[tuple[Reranked, str]] = []
        for i, (query, m) in enumerate(zip(queries, moments)):
            saliency = None
            if self.saliency is not None:
                if query not in curves:
                    with timed(timings_s, "saliency"):
                        curves[query] = self.saliency.curve(str(video.path), query, fps=self.saliency_fps)
                feats = window_features(curves[query], m)
                saliency = SaliencyEvidence(feats, fuse(m.score, feats, self.weights))
            score = saliency.fused_score if saliency is not None else m.score
            speech = speech_features(transcript, m, query) if transcript is not None else None
            if speech is not None:
                score = fuse_speech(score, speech, self.speech_weight)
            scored.append((Reranked(i, m.with_score(score), m.score, saliency, speech=speech), query))
        scored.sort(key=lambda t: -t[0].moment.score)
        if self.verifier is None:
            return [r for r, _ in scored]
        out = []
        for rank, (r, query) in enumerate(scored):
            answer = None
            if rank < self.max_verify:
                with timed(timings_s, "verifier"):
                    answer = self.verifier.verify(video, query, r.moment, frames)
            p = answer.p_yes if answer is not None else NEUTRAL_P_YES
            final = (1.0 - self.verifier_weight) * r.moment.score + self.verifier_weight * p
            out.append(replace(r, moment=r.moment.with_score(final), verifier=answer))
        return sorted(out, key=lambda r: -r.moment.score)
