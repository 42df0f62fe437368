"""Composition: pick one candidate per step, maximising the total score, subject to the plan's relations.

Exact search by depth-first branch and bound: candidates are tried best first, and a partial assignment
is dropped as soon as its score plus the best still possible for the remaining steps cannot enter the
current top list. With the few candidates per step a grounder returns (top-k <= 10) and <= 4 steps this
visits a tiny fraction of the product and is exact (checked against brute force in the tests).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from grounding_agent.defaults import AGENT
from grounding_agent.errors import ConfigError
from grounding_agent.types import Moment, Plan, Relation
from grounding_agent.utils.temporal import nms


@dataclass(frozen=True)
class Composition:
    """One consistent choice of sub-event moments and what it returns.

    Attributes:
        moment: the returned moment (the target step's, or the span of all steps); its score is the mean
            of the chosen steps' scores.
        chosen: step id -> the candidate chosen for it.
        total_score: sum of the chosen candidates' scores (what the search maximises).
        consistent: False only for the fallback returned when no assignment satisfies the relations.
    """

    moment: Moment
    chosen: dict[str, Moment]
    total_score: float
    consistent: bool = True


def satisfies(
    relation: Relation, a: Moment, b: Moment, before_tolerance_s: float = AGENT.before_tolerance_s
) -> bool:
    """Whether moments `a` and `b` satisfy `relation` (its `a` and `b` steps).

    before: a ends no later than `before_tolerance_s` after b starts (annotations and grounders are
    rarely frame-exact, so back-to-back events often overlap by a second).
    during: the two spans overlap by more than zero seconds.
    """
    if relation.kind == "before":
        return a.end_s <= b.start_s + before_tolerance_s
    if relation.kind == "during":
        return min(a.end_s, b.end_s) > max(a.start_s, b.start_s)
    raise ConfigError(f"unknown relation kind {relation.kind!r}; use 'before' or 'during'")


def composed_moment(plan: Plan, chosen: Mapping[str, Moment]) -> Moment:
    """The moment a plan returns for a full assignment: the target step's, or the span of all steps."""
    score = sum(m.score for m in chosen.values()) / len(chosen)
    if plan.target == "span":
        return Moment(min(m.start_s for m in chosen.values()), max(m.end_s for m in chosen.values()), score)
    target = chosen[plan.target]
    return Moment(target.start_s, target.end_s, score)


def consistent(
    plan: Plan, chosen: Mapping[str, Moment], before_tolerance_s: float = AGENT.before_tolerance_s
) -> bool:
    """Whether a (full or partial) assignment satisfies every relation whose two steps are assigned."""
    return all(
        satisfies(r, chosen[r.a], chosen[r.b], before_tolerance_s)
        for r in plan.relations
        if r.a in chosen and r.b in chosen
    )


def search(
    plan: Plan,
    candidates: Mapping[str, Sequence[Moment]],
    *,
    top_n: int = AGENT.top_n,
    before_tolerance_s: float = AGENT.before_tolerance_s,
) -> list[tuple[float, dict[str, Moment]]]:
    """The `top_n` highest-total consistent assignments, best first, as (total_score, step -> moment).

    Raises:
        ConfigError: a step has no candidate list.
    """
    order = [s.id for s in plan.steps]
    missing = [sid for sid in order if sid not in candidates]
    if missing:
        raise ConfigError(f"no candidates for steps {missing}; ground every step of the plan first")
    ranked = {sid: sorted(candidates[sid], key=lambda m: -m.score) for sid in order}
    if any(not ranked[sid] for sid in order):
        return []
    # Best score still reachable from step i onwards (the bound).
    rest_best = [0.0] * (len(order) + 1)
    for i in range(len(order) - 1, -1, -1):
        rest_best[i] = rest_best[i + 1] + ranked[order[i]][0].score
    # Relations to check when step i is assigned: those whose other end is already assigned.
    position = {sid: i for i, sid in enumerate(order)}
    check_at: list[list[Relation]] = [[] for _ in order]
    for r in plan.relations:
        check_at[max(position[r.a], position[r.b])].append(r)

    best: list[tuple[float, int, dict[str, Moment]]] = []  # min-heap of (total, tiebreak, assignment)
    tiebreak = itertools.count()
    chosen: dict[str, Moment] = {}

    def full() -> bool:
        return len(best) >= top_n

    def visit(i: int, total: float) -> None:
        if i == len(order):
            item = (total, -next(tiebreak), dict(chosen))
            if not full():
                heapq.heappush(best, item)
            elif total > best[0][0]:
                heapq.heapreplace(best, item)
            return
        sid = order[i]
        for cand in ranked[sid]:  # best first: once the bound fails it fails for the rest too
            if full() and total + cand.score + rest_best[i + 1] <= best[0][0]:
                break
            chosen[sid] = cand
            if all(satisfies(r, chosen[r.a], chosen[r.b], before_tolerance_s) for r in check_at[i]):
                visit(i + 1, total + cand.score)
            del chosen[sid]

    visit(0, 0.0)
    return [(total, assignment) for total, _, assignment in sorted(best, key=lambda t: (-t[0], -t[1]))]


def compose(
    plan: Plan,
    candidates: Mapping[str, Sequence[Moment]],
    *,
    top_n: int = AGENT.top_n,
    before_tolerance_s: float = AGENT.before_tolerance_s,
    nms_iou: float = AGENT.nms_iou,
) -> list[Composition]:
    """Best consistent compositions, their returned moments de-duplicated by temporal NMS, best first.

    When no assignment satisfies the relations, returns the single best unconstrained assignment with
    `consistent=False` (the caller records it), so the agent still answers.
    """
    found = search(plan, candidates, top_n=top_n * 3, before_tolerance_s=before_tolerance_s)
    flag = True
    if not found:
        relaxed = Plan(plan.query, plan.steps, (), plan.target, plan.planner, plan.notes)
        found = search(relaxed, candidates, top_n=1)
        flag = False
    comps = [Composition(composed_moment(plan, a), a, total, flag) for total, a in found]
    kept = nms([c.moment for c in comps], iou_threshold=nms_iou, max_keep=top_n)
    kept_ids = {id(m) for m in kept}
    return [c for c in comps if id(c.moment) in kept_ids]
