"""parse_moments / parse_answer / format_moment: real-world answer formats, policy, and fuzzing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grounding_agent import format_moment, parse_moments
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.parsing import format_moments, parse_answer, to_seconds
from grounding_agent.types import Moment

DURATION_S = 30.0

# (what a model wrote, expected (start_s, end_s[, score]) spans). Sources in comments.
FORMATS = [
    # TimeLens's prompt answer
    ("The event happens in 12.3 - 20.1 seconds.", [(12.3, 20.1)]),
    # Time-R1: reasoning + answer tag, two decimals, "to"; the answer beats the numbers in <think>
    ("<think>At 3.00 to 5.00 the man stands.</think> <answer>12.54 to 17.83</answer>", [(12.54, 17.83)]),
    # Time-R1 regex alternative "and"
    ("<answer>12.54 and 17.83</answer>", [(12.54, 17.83)]),
    ("from 12.3 to 20.1", [(12.3, 20.1)]),
    ("The person opens the door between 12 and 20 s.", [(12.0, 20.0)]),
    ("00:12 - 00:20", [(12.0, 20.0)]),
    ("1:02:03.5 - 1:02:09", [(3723.5, 3729.0)]),  # with a long video below
    ("12s-20s", [(12.0, 20.0)]),
    ("[12.3, 20.1]", [(12.3, 20.1)]),
    # VideoMind-like [start, end, confidence] triple
    ("[12.3, 20.1, 0.8]", [(12.3, 20.1, 0.8)]),
    # unicode dashes and confidences in two notations
    (
        "12.3 – 20.1 seconds (0.8); 25 — 28 seconds (confidence: 80%)",
        [(12.3, 20.1, 0.8), (25.0, 28.0, 0.8)],
    ),
    # JSON answers
    ('{"start": 12.3, "end": 20.1}', [(12.3, 20.1)]),
    ('{"start_time": "00:12", "end_time": "00:20"}', [(12.0, 20.0)]),
    ("Start time: 12.3 seconds, end time: 20.1 seconds", [(12.3, 20.1)]),
    # prose with two times and no explicit range
    ("The person starts at 5.2 seconds and stops at 9.8 seconds.", [(5.2, 9.8)]),
    # SRT subtitles (video-editing tools)
    ("00:00:12,300 --> 00:00:20,100", [(12.3, 20.1)]),
    # numbered multi-moment list with scores
    (
        "1. 12.3 - 20.1 seconds, score 0.9\n2. 22.0 - 25.2 seconds, score 0.4",
        [(12.3, 20.1, 0.9), (22.0, 25.2, 0.4)],
    ),
    ("12.3 ~ 20.1", [(12.3, 20.1)]),
    # TimeChat: span then caption
    ("0.0 - 10.5 seconds, a man is opening the door.", [(0.0, 10.5)]),
    ("(12.3s, 20.1s)", [(12.3, 20.1)]),
    ("The moment is from 0:05.5 to 0:09.", [(5.5, 9.0)]),
    ("12.3-20.1 sec.", [(12.3, 20.1)]),
    # truncated generation: the answer tag never closed
    ("<think>hmm</think><answer>12.5 - 17", [(12.5, 17.0)]),
]


@pytest.mark.parametrize(("text", "expected"), FORMATS, ids=[t[:40] for t, _ in FORMATS])
def test_real_world_formats(text: str, expected: list[tuple[float, ...]]) -> None:
    duration_s = 4000.0 if "1:02:03" in text else DURATION_S
    parsed = parse_answer(text, duration_s)
    assert parsed.failure is None
    got = [v for m in parsed.moments for v in (m.start_s, m.end_s, m.score)]
    want = [v for e in expected for v in (e[0], e[1], e[2] if len(e) > 2 else 1.0)]
    assert got == pytest.approx(want)


def test_many_distinct_formats_covered() -> None:
    assert len(FORMATS) >= 15


def test_last_answer_tag_wins() -> None:
    text = "<answer>1 - 2</answer> wait, no <answer>3.5 - 7.25 seconds</answer>"
    assert parse_moments(text, DURATION_S) == [Moment(3.5, 7.25)]


def test_reasoning_only_keeps_its_conclusion() -> None:
    """No answer tag: the last span of the reasoning is the model's conclusion."""
    text = "<think>maybe 3 to 5, but actually 6 to 8</think>"
    assert parse_moments(text, DURATION_S) == [Moment(6.0, 8.0)]


def test_empty_answer_tag_falls_back_to_the_rest() -> None:
    assert parse_moments("<think>it is 3 to 5</think><answer> </answer>", DURATION_S) == [Moment(3.0, 5.0)]


def test_reversed_range_is_swapped_and_noted() -> None:
    parsed = parse_answer("20.1 - 12.3 seconds", DURATION_S)
    assert parsed.moments == [Moment(12.3, 20.1)]
    assert any("swapped" in note for note in parsed.notes)


def test_clamped_to_duration() -> None:
    parsed = parse_answer("25 - 40 seconds", DURATION_S)
    assert parsed.moments == [Moment(25.0, 30.0)]
    assert any("clamped" in note for note in parsed.notes)


def test_span_after_the_video_is_dropped_with_a_failure() -> None:
    parsed = parse_answer("35 - 40 seconds", DURATION_S)
    assert parsed.moments == []
    assert parsed.failure is not None and "outside the video" in parsed.failure.reason


def test_zero_length_span_is_kept_as_a_point() -> None:
    assert parse_moments("12 - 12 seconds", DURATION_S) == [Moment(12.0, 12.0)]


def test_duplicates_removed_order_kept() -> None:
    text = "5 - 9 seconds\n1 - 2 seconds\n5 - 9 seconds"
    assert parse_moments(text, DURATION_S) == [Moment(5.0, 9.0), Moment(1.0, 2.0)]


def test_out_of_range_confidence_is_not_a_confidence() -> None:
    # "(12)" cannot be a probability: the span keeps the default score.
    assert parse_moments("3 - 5 seconds (12)", DURATION_S) == [Moment(3.0, 5.0, 1.0)]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty answer"),
        ("I cannot tell from the video.", "no numbers in the answer"),
        ("There are 3 people, 2 dogs and 5 cats.", "no time span among 3 number(s)"),
        ("\x00\x19 sin opens tidying", "no numbers in the answer"),
    ],
)
def test_failures_are_recorded_not_raised(text: str, reason: str) -> None:
    parsed = parse_answer(text, DURATION_S)
    assert parsed.moments == []
    assert parsed.failure is not None and parsed.failure.reason.startswith(reason)
    assert parsed.failure.text == text


def test_single_number_is_a_failure() -> None:
    parsed = parse_answer("at 12.5", DURATION_S)
    assert parsed.moments == [] and parsed.failure is not None
    assert "1 number" in parsed.failure.reason


def test_bad_duration_is_a_caller_error() -> None:
    with pytest.raises(ConfigError, match="duration_s"):
        parse_answer("1 - 2", 0.0)


def test_clock_to_seconds() -> None:
    assert to_seconds("1:02:03.5") == 3723.5
    assert to_seconds("00:00:12,300") == pytest.approx(12.3)
    assert to_seconds("7") == 7.0


def test_format_moment() -> None:
    assert format_moment(Moment(1.0, 12.345)) == "1.00 - 12.35 seconds"
    assert format_moment(Moment(1.0, 2.0, 0.25), with_score=True) == "1.00 - 2.00 seconds (0.25)"


# --- properties -----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text: str) -> None:
    parsed = parse_answer(text, DURATION_S)
    for m in parsed.moments:
        assert 0.0 <= m.start_s <= m.end_s <= DURATION_S
    assert (parsed.failure is None) == bool(parsed.moments)


_TAGS = ["<answer>", "</answer>", "<think>", "</think>"]
_ALPHABET = st.sampled_from(list("0123456789.:-–—~ ,;()[]<>/stoandfrombetweenseconds%\n") + _TAGS)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ALPHABET, max_size=80).map("".join))
def test_never_raises_on_number_heavy_text(text: str) -> None:
    parsed = parse_answer(text, DURATION_S)
    for m in parsed.moments:
        assert 0.0 <= m.start_s <= m.end_s <= DURATION_S


_CENTI = st.integers(min_value=0, max_value=360_000)  # up to 1 hour, in hundredths of a second


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_CENTI, _CENTI, st.integers(0, 100)), min_size=1, max_size=5), st.booleans())
def test_formatted_moments_parse_back_exactly(rows: list[tuple[int, int, int]], with_score: bool) -> None:
    duration_s = 3600.0
    moments = []
    for a, b, c in rows:
        start, end = sorted((a / 100, b / 100))
        if start < duration_s:
            moments.append(Moment(start, end, c / 100 if with_score else 1.0))
    # The parser drops repeated spans (same start and end), so the property is over distinct spans.
    unique = list({(m.start_s, m.end_s): m for m in reversed(moments)}.values())[::-1]
    back = parse_moments(format_moments(unique, with_score=with_score), duration_s)
    assert back == unique  # Moment equality compares start_s, end_s and score
