"""Composition: relations honoured, best consistent assignment chosen (checked against brute force)."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest

from grounding_agent.agent import AgentConfig, ground_steps
from grounding_agent.agent.compose import compose, consistent, satisfies, search
from grounding_agent.agent.planner import RulePlanner
from grounding_agent.errors import ConfigError
from grounding_agent.types import Moment, Plan, Relation, Step, Video
from tests.agent_doubles import ScriptedGrounderForTests

VIDEO = Video(Path("scripted.mp4"), duration_s=30.0, avg_fps=10.0, num_frames=300, width=64, height=48)


def brute_force(plan, candidates, tol):
    """Every consistent assignment by total score, best first."""
    ids = [s.id for s in plan.steps]
    out = []
    for combo in itertools.product(*(candidates[i] for i in ids)):
        chosen = dict(zip(ids, combo))
        if consistent(plan, chosen, tol):
            out.append((sum(m.score for m in combo), chosen))
    return sorted(out, key=lambda t: -t[0])


def test_relations():
    before, during = Relation("before", "s1", "s2"), Relation("during", "s1", "s2")
    assert satisfies(before, Moment(0, 5), Moment(5, 9), 0.0)
    assert satisfies(before, Moment(0, 6), Moment(5, 9), 1.0)  # back-to-back within tolerance
    assert not satisfies(before, Moment(0, 6.5), Moment(5, 9), 1.0)
    assert not satisfies(before, Moment(10, 12), Moment(5, 9), 1.0)
    assert satisfies(during, Moment(4, 6), Moment(5, 9))
    assert not satisfies(during, Moment(0, 5), Moment(5, 9))


def test_then_query_through_scripted_grounder():
    plan = RulePlanner().plan("person opens the fridge, then drinks from a bottle.")
    grounder = ScriptedGrounderForTests(
        {
            # The best "open" candidate comes *after* every "drink" candidate but one: it must lose.
            "person opens the fridge": [Moment(20, 24, 0.9), Moment(2, 6, 0.6), Moment(12, 14, 0.3)],
            "person drinks from a bottle": [Moment(8, 12, 0.8), Moment(25, 28, 0.2)],
        }
    )
    results = ground_steps(plan, VIDEO, grounder, AgentConfig(top_k=5))
    comps = compose(plan, {k: r.candidates for k, r in results.items()}, before_tolerance_s=1.0)
    best = comps[0]
    assert best.consistent
    assert best.chosen["s1"] == Moment(2, 6, 0.6) and best.chosen["s2"] == Moment(8, 12, 0.8)
    assert (best.moment.start_s, best.moment.end_s) == (2, 12)  # target "span"
    assert best.moment.score == pytest.approx(0.7)
    assert [q for q, _ in grounder.calls] == ["person opens the fridge", "person drinks from a bottle"]
    # Runner-up (open at 20-24, drink at 25-28) is also consistent; NMS keeps both (different spans).
    assert comps[1].chosen["s1"].start_s == 20 and comps[1].chosen["s2"].start_s == 25


def test_target_step_is_returned():
    plan = RulePlanner().plan("the man reads a book after sitting down.")
    assert plan.target == "s1"
    cands = {"s1": [Moment(1, 3, 0.9), Moment(10, 15, 0.5)], "s2": [Moment(5, 8, 0.7)]}
    best = compose(plan, cands)[0]
    assert (best.moment.start_s, best.moment.end_s) == (10, 15)  # reading after the sitting


def test_during_relation():
    plan = RulePlanner().plan("a person laughs while talking on the phone.")
    cands = {"s1": [Moment(0, 2, 0.9), Moment(12, 14, 0.4)], "s2": [Moment(10, 20, 0.8)]}
    best = compose(plan, cands)[0]
    assert best.chosen["s1"] == Moment(12, 14, 0.4)


def test_no_consistent_assignment_falls_back_flagged():
    plan = RulePlanner().plan("person sits down then stands up.")
    cands = {"s1": [Moment(10, 12, 0.9)], "s2": [Moment(0, 3, 0.8)]}
    comps = compose(plan, cands)
    assert len(comps) == 1 and not comps[0].consistent
    assert (comps[0].moment.start_s, comps[0].moment.end_s) == (0, 12)


def test_missing_step_candidates_is_a_config_error():
    plan = RulePlanner().plan("person sits down then stands up.")
    with pytest.raises(ConfigError, match="s2"):
        compose(plan, {"s1": [Moment(0, 1)]})


def test_nms_removes_near_duplicate_compositions():
    plan = Plan("q", (Step("s1", "sit"), Step("s2", "read")), (Relation("before", "s1", "s2"),), "s2")
    cands = {"s1": [Moment(0, 2, 0.9), Moment(0, 2.1, 0.85)], "s2": [Moment(5, 9, 0.8), Moment(5, 9.1, 0.7)]}
    comps = compose(plan, cands, nms_iou=0.7)
    assert len(comps) == 1  # four assignments, all returning ~5-9 s
    assert comps[0].total_score == pytest.approx(1.7)


def random_case(rng: random.Random):
    n_steps = rng.randint(1, 4)
    ids = [f"s{i + 1}" for i in range(n_steps)]
    rels = []
    for a, b in itertools.combinations(ids, 2):
        if rng.random() < 0.5:
            kind = rng.choice(["before", "during"])
            rels.append(Relation(kind, *((a, b) if rng.random() < 0.5 else (b, a))))
    target = rng.choice([*ids, "span"])
    plan = Plan("q", tuple(Step(i, f"event {i}") for i in ids), tuple(rels), target)
    cands = {}
    for i in ids:
        cands[i] = []
        for _ in range(rng.randint(1, 6)):
            start = rng.uniform(0, 55)
            cands[i].append(
                Moment(round(start, 1), round(start + rng.uniform(0.5, 8), 1), round(rng.random(), 2))
            )
    return plan, cands


@pytest.mark.parametrize("seed", range(300))
def test_search_matches_brute_force(seed):
    rng = random.Random(seed)
    plan, cands = random_case(rng)
    tol = rng.choice([0.0, 1.0, 3.0])
    top_n = rng.randint(1, 6)
    expected = brute_force(plan, cands, tol)
    got = search(plan, cands, top_n=top_n, before_tolerance_s=tol)
    assert [t for t, _ in got] == pytest.approx([t for t, _ in expected[:top_n]])
    for total, chosen in got:
        assert consistent(plan, chosen, tol)
        assert total == pytest.approx(sum(m.score for m in chosen.values()))
        for sid, m in chosen.items():
            assert m in cands[sid]
    if expected:
        best = compose(plan, cands, before_tolerance_s=tol)[0]
        assert best.consistent and best.total_score == pytest.approx(expected[0][0])


def test_windows_follow_grounded_relations():
    plan = RulePlanner().plan("person opens the door then walks in.")
    grounder = ScriptedGrounderForTests(
        {
            "person opens the door": [Moment(14, 18, 0.9), Moment(16, 20, 0.5)],
            "person walks in": [Moment(20, 25, 0.6), Moment(2, 4, 0.9)],
        },
        needs_pixels=True,
    )
    windows = []

    def sampler(video, start_s, end_s):
        windows.append((start_s, end_s))
        # the scripted grounder ignores pixels

    results = ground_steps(plan, VIDEO, grounder, AgentConfig(before_tolerance_s=1.0), sampler=sampler)
    assert windows == [(17.0, 30.0)]  # after the earliest end of "opens the door" (18 s) minus 1 s
    assert results["s1"].window_s == (0.0, 30.0) and results["s2"].window_s == (17.0, 30.0)
    assert results["s2"].candidates == [Moment(20, 25, 0.6)]  # 2-4 s lies outside the window: dropped


def test_empty_answer_uses_window_with_zero_score():
    plan = RulePlanner().plan("person opens the door then walks in.")
    grounder = ScriptedGrounderForTests({"person opens the door": [Moment(1, 3, 0.9)]})
    results = ground_steps(plan, VIDEO, grounder)
    assert results["s2"].candidates == [Moment(0, 30, 0.0)]
    assert "no usable moment" in results["s2"].notes[0]
