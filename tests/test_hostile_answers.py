"""Model answers that name the start and the end in words, hedge ("around", "approximately", "about",
"~", "≈") or restate a time in parentheses: exactly one span, the one meant (issue 32). The 20+ formats
of tests/test_parsing.py must keep parsing as they did."""

from __future__ import annotations

import pytest

from grounding_agent.grounders.parsing import parse_answer

DURATION_S = 4000.0

WORDED = [
    # The two answers the probe found.
    (
        "the start time is 0:00:05 (5 seconds into the video) and the end time is 0:00:10 (10 seconds)",
        (5, 10),
    ),
    ("the start time is around 2.0s and the end time is 3.0s", (2, 3)),
    # Hedges between the word and the time.
    ("The start time is around 2.0s, and the end time is around 3.0s.", (2, 3)),
    ("The event starts at approximately 12.5 seconds and ends at about 18 seconds.", (12.5, 18)),
    ("start: ~2.5s, end: ~6s", (2.5, 6)),
    ("starting time ≈ 3.0 s; ending time ≈ 6.5 s", (3, 6.5)),
    ("The action begins at around 0:12 and finishes at about 0:19.", (12, 19)),
    ("It starts at 4.2s (roughly) and ends at 9.8s.", (4.2, 9.8)),
    ("The start is at 3 s and the end is at 7 s.", (3, 7)),
    ("Start time: 00:01:05, end time: 00:01:20", (65, 80)),
    # Restatements in parentheses, with words or as a range.
    (
        "The start time is approximately 00:00:04 (4 s) and the end time is approximately 00:00:08.5 (8.5 s).",
        (4, 8.5),
    ),
    ("The moment occurs from 0:00:07 (7 s) to 0:00:11 (11 s).", (7, 11)),
    ("The segment begins around 40s (0:40) and stops near 52s (0:52).", (40, 52)),
    ("Start: 1:02:03.5 (3723.5 seconds), End: 1:02:09 (3729 seconds)", (3723.5, 3729)),
    # Ranges beside a worded answer are context, not extra spans.
    (
        "Based on the frames at 0.0s, 1.0s and 2.0s, the start time is around 2.0s and the end time is 3.0s",
        (2, 3),
    ),
    ("The man walks from 0.0 to 2.0; the start time is around 2.0s and the end time is 3.0s", (2, 3)),
    ("From the start of the video, the start time is around 2.0s and the end time is 3.0s", (2, 3)),
    # Words that only look like the keywords do not take over a range.
    ("The startled man runs at 3 - 5 s, the weekend ends", (3, 5)),
    ("At the beginning, 3 - 5 s, then it ends at 9 s", (3, 5)),
]


@pytest.mark.parametrize(("text", "span"), WORDED)
def test_one_span_named_in_words(text, span):
    parsed = parse_answer(text, DURATION_S)
    assert parsed.failure is None, parsed.failure
    assert [(m.start_s, m.end_s) for m in parsed.moments] == [pytest.approx(span)], text


@pytest.mark.parametrize(
    ("text", "span", "score"),
    [
        ("Start time is about 5.5 seconds, end time is about 9 seconds (confidence 0.8).", (5.5, 9), 0.8),
        ("12.3 - 20.1 seconds (0.8)", (12.3, 20.1), 0.8),  # a confidence is no restatement
        ("the start time is around 2 s and the end time is 3 s (80%)", (2, 3), 0.8),
    ],
)
def test_confidence_after_a_worded_span_still_counts(text, span, score):
    (moment,) = parse_answer(text, DURATION_S).moments
    assert (moment.start_s, moment.end_s, moment.score) == (
        pytest.approx(span[0]),
        pytest.approx(span[1]),
        score,
    )


def test_several_worded_spans_are_each_read():
    text = "First it starts at about 1 s and ends at 2 s; later it starts around 5 s and ends at 7 s."
    assert [(m.start_s, m.end_s) for m in parse_answer(text, DURATION_S).moments] == [(1, 2), (5, 7)]
