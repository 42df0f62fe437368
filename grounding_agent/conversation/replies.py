"""Replies a `Session` builds without the describer: follow-ups, what is said, "not said" / "not shown",
"nothing there".

- `follow`: a message that refers to the previous answer ("after that", "what happens next?", "again").
  With an event it grounds that event inside the window the reference allows; without one ("what happens
  next?") it grounds `NEXT_EVENT_QUERY` there, so the answer carries the grounder's own moment and score
  (never the previous answer's score, never a fixed slice), and its evidence says what was grounded.
- `absent`: the grounder looked and did not find it (`Grounding.info["absent"]`: a quote that is not said,
  a text that is not shown): the answer says so and has no moment (no whole-video chip).
- `said`: "what does she say after X?", quoted from the transcript.
- `nothing`: a follow-up whose window is empty (the previous answer is at the end / start of the video).
"""

from __future__ import annotations

from typing import Any

from grounding_agent.conversation.answers import Answer, moment_dict
from grounding_agent.conversation.followups import (
    NEXT_EVENT_QUERY,
    PREVIOUS_EVENT_QUERY,
    Reading,
    reference_window,
)
from grounding_agent.types import TIME_EPS_S, Evidence, Moment, Plan, Prediction

# `session` below is the calling `Session` (not imported here: session.py imports this module).
Session = Any

# What "not said" / "not shown" answers begin with, per `Grounding.info["absent"]`.
ABSENT_TEXT = {"said": "Not said", "shown": "Not shown"}


def absent_reason(prediction: Prediction) -> str | None:
    """ "said" / "shown" when the grounder looked and found nothing (see `absent`), else None."""
    return prediction.extra.get("absent")


def absent(
    session: Session,
    prediction: Prediction,
    plan: Plan | None,
    evidence: list[Evidence],
    window_s: tuple[float, float] | None,
) -> Answer:
    """ "Not said: 'the price is high' is not in the transcript." — no moment, the reason typed."""
    reason = prediction.extra["absent"]
    info = prediction.extra.get("grounder") or {}
    searched = info.get("searched") or prediction.query
    where = "in the transcript" if reason == "said" else "on screen"
    if window_s is not None:
        where += f" between {window_s[0]:.2f} and {window_s[1]:.2f} s"
    text = f'{ABSENT_TEXT.get(reason, "Not found")}: "{searched}" is not {reason} {where}.'
    if info.get("note") == "the video has no audio track":
        text += " The video has no audio track."
    model = info.get("asr_model") or info.get("ocr_model") or session.grounder.name
    session._emit("moments", [])
    source = f"{info.get('grounder', 'grounder')}:{model}"
    session._emit("text", {"text": text, "text_source": source})
    return Answer(text, [], evidence, plan, source, window_s, absent=reason)


def follow(session: Session, message: str, reading: Reading) -> tuple[Answer, str]:
    """A follow-up: ground the event it names (or the next event) inside the window its reference allows."""
    reference = reading.reference
    assert reference is not None
    previous = next((t for t in reversed(session.turns) if t.answer.moments), None)
    if previous is None:
        text = "There is no earlier answer to refer to yet; first ask when something happens."
        return Answer(text, [], text_source="session"), ""
    prev = previous.answer.moments[0]
    duration = session.video.duration_s
    window = reference_window(reference, prev.start_s, prev.end_s, duration, session.follow_s)
    ref = {"kind": reference.kind, "phrase": reference.phrase, "turn": previous.index,
           "previous": [prev.start_s, prev.end_s]}  # fmt: skip
    session._emit("reference", {**ref, "window_s": list(window)})
    query = reading.event or (previous.query if reference.kind == "again" else "")
    # "What happens next?": the grounder finds the next (for "before that?": the last) event in the window.
    grounded = query or (PREVIOUS_EVENT_QUERY if reference.kind == "before" else NEXT_EVENT_QUERY)
    ref_evidence = Evidence(
        "reference", prev.start_s, prev.end_s, None,
        f'"{reference.phrase}" refers to turn {previous.index}; grounded "{grounded}" in '
        f"{window[0]:.2f}-{window[1]:.2f} s",
        f"turn:{previous.index}",
    )  # fmt: skip
    if window[1] - window[0] < session.frame_interval_s - TIME_EPS_S:
        answer = nothing(reference.kind, prev, window, None, [ref_evidence])
    else:
        moments, plan, prediction, evidence = session._search(grounded, session.top_k, window)
        if absent_reason(prediction):
            answer = absent(session, prediction, plan, [ref_evidence, *evidence], window)
        else:
            best = moments[0] if moments and not query else None
            # "what happens next?" is told about the moment found; a named event about the whole window.
            told = (best.start_s, best.end_s) if best is not None else window
            answer = session._answer(message, moments, [ref_evidence, *evidence], plan, told)
    answer.reference = ref
    answer.window_s = window
    return answer, query


def said(
    session: Session,
    moments: list[Moment],
    evidence: list[Evidence],
    plan: Plan | None,
    window_s: tuple[float, float] | None,
) -> Answer:
    """ "What does she say after X?": the words spoken there, quoted from the transcript (speech wiring)."""
    from grounding_agent.media.transcript import said_in

    transcript = session.transcript
    relation = (moments[0].explanation or {}).get("relation", "during") if moments else "during"
    window = window_s or (0.0, session.video.duration_s)
    spoken = said_in(transcript, window, relation)
    if spoken is None:
        text = f"Nothing is said in {window[0]:.2f}-{window[1]:.2f} s."
    else:
        text = f'Said at {spoken.start_s:.2f}-{spoken.end_s:.2f} s: "{spoken.text}"'
        score = moments[0].score if moments else 1.0
        moments = [Moment(spoken.start_s, spoken.end_s, score, {"said": spoken.text, "relation": relation})]
        evidence = [*evidence, spoken.to_evidence(transcript.model)]
    session._emit("moments", [moment_dict(m) for m in moments])
    session._emit("text", {"text": text, "text_source": "transcript"})
    return Answer(text, moments, evidence, plan, f"transcript:{transcript.model}", window_s)


def nothing(
    kind: str, prev: Moment, window: tuple[float, float], plan: Plan | None, evidence: list[Evidence]
) -> Answer:
    """Nothing can come after (before) a moment at the end (start) of the video."""
    where = "the end" if kind in ("after", "again") else "the start"
    text = (f"Nothing can be {'before' if kind == 'before' else 'after'} {prev.start_s:.2f}-{prev.end_s:.2f} s: "
            f"it is at {where} of the video.")  # fmt: skip
    return Answer(text, [], evidence, plan, "session", window)
