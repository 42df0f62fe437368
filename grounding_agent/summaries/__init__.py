"""Video summaries: the shots worth most that fit a budget, as an `EditPlan` every surface can export.

    from grounding_agent.summaries import summarize
    plan = summarize("talk.mp4", seconds=30)       # or ratio=0.15 (the default); transcript=... snaps cuts

Modules, bottom up: `shots` (PySceneDetect cuts on our decoder's frames, split to at most `max_shot_s`,
colour-histogram features; cached), `scores` (generic highlight scores per 2-s clip; cached), `importance`
(per-shot importance and the diversity term), `speech` (boundaries at sentence ends, never mid-word),
`keyshots` (0/1 knapsack over frames, the fill, the evidence; `edit`'s teaser without sentences uses it),
`plan` (`summarize`, the budget checks).

May import: the core modules, `utils`, `media`, `highlights` and `edit` (the plan, the frame grid, the
teaser's sentence spans); `edit.sources` imports `keyshots` alone (which imports no `edit.sources`).
"""

from __future__ import annotations

from grounding_agent.summaries.plan import budget_s, summarize

__all__ = ["budget_s", "summarize"]
