"""The web UI's "summary" tab: a keyshot summary of the open video (`Session.summarize`), its plan,
exports and (optionally) its render. `ui.app` adds the tab with `build` and answers it with `outputs`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from grounding_agent.defaults import SUMMARY
from grounding_agent.errors import GroundingAgentError

SUMMARY_EXPORTS = (".otio", ".fcpxml", ".edl", ".srt")


def outputs(
    session: Any,
    folder: Path,
    stem: str,
    seconds: float | None,
    percent: float | None,
    render: bool,
    step: Any,
) -> tuple[list[list[Any]], list[str], str | None, list[str]]:
    """The summary's rows (kept / cut segments), export files, render and notes. `seconds` > 0 wins over
    `percent`; neither: the default share."""
    from grounding_agent import edit as editing

    step = step or (lambda *a, **k: None)
    step(0.1, desc="shots, signals and the knapsack")
    if seconds:
        plan = session.summarize(seconds=float(seconds))
    else:
        plan = session.summarize(ratio=float(percent) / 100.0 if percent is not None else None)
    files, notes = [], [f"{plan.instruction}: keeps {plan.kept_s:.2f} s in {len(plan.kept)} segment(s)"]
    for ext in SUMMARY_EXPORTS:
        try:
            files.append(str(editing.export(plan, folder / f"{stem}{ext}")))
        except GroundingAgentError as exc:  # an EDL needs a SMPTE rate: that format is left out, said why
            notes.append(f"no {ext}: {exc}")
    rendered = None
    if render:
        step(0.5, desc="rendering")
        rendered = str(editing.render(plan, folder / f"{stem}.mp4"))
    rows = [[s.action, round(s.start_s, 3), round(s.end_s, 3), _why(s)] for s in plan.segments]
    return rows, files, rendered, [*notes, *plan.notes]


def _why(segment: Any) -> str:
    return segment.evidence[0].text if segment.evidence else segment.reason


def build(gr: Any, handler: Callable[..., Any], key: Any) -> None:
    """The tab's controls, inside the caller's Blocks; `handler(seconds, percent, key, render)`."""
    with gr.Tab("summary"):
        with gr.Row():
            seconds = gr.Number(label="seconds (0: use the %)", value=0, minimum=0, elem_id="summary-seconds")
            percent = gr.Number(label="% of the video", value=SUMMARY.ratio * 100, elem_id="summary-percent")
        render = gr.Checkbox(label="render the summary", value=False)
        button = gr.Button("summarize", elem_id="summarize")
        rows = gr.Dataframe(headers=["action", "start_s", "end_s", "why"], label="summary plan")
        files = gr.File(label="exports (OTIO / FCPXML / EDL / SRT)", file_count="multiple")
        notes = gr.Markdown(elem_id="summary-notes")
        rendered = gr.Video(label="rendered summary", interactive=False)
    button.click(
        handler, [seconds, percent, key, render], [rows, files, rendered, notes], api_name="summarize"
    )
