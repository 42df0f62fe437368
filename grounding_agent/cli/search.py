"""`grounding-agent search "query"`: every video of a library, by what is seen, said and written on screen.

grounding-agent search 'she says "the budget is final"' --library ~/rushes-lib -k 5
grounding-agent search "the slide titled Quarterly Results" --library ~/rushes-lib --channels ocr --json
grounding-agent search "the dog jumps" --library ~/rushes-lib --ground --backend vllm   # retrieve-then-ground
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from grounding_agent.cli._common import positive_float, positive_int, print_json, text_arg, top_k_int
from grounding_agent.cli.index import LIBRARY_HELP
from grounding_agent.cli.terminal import CleanWriter
from grounding_agent.defaults import LIBRARY


def add_arguments(p: argparse.ArgumentParser) -> None:
    from grounding_agent.grounders.registry import GROUNDERS

    p.add_argument("query", type=text_arg, help="what to find: a description, a quote, an on-screen title")
    p.add_argument("--library", metavar="DIR|URL", help=LIBRARY_HELP)
    p.add_argument(
        "-k", type=top_k_int, default=LIBRARY.search_k, help=f"hits to show (default {LIBRARY.search_k})"
    )
    p.add_argument("--channels", metavar="C,C", help="visual,speech,ocr (default: all)")
    p.add_argument("--saliency-model", metavar="DIR", help="CLIP folder (default: the one indexed with)")
    p.add_argument("--json", action="store_true", help="print JSON")
    g = p.add_argument_group("retrieve-then-ground")
    g.add_argument("--ground", action="store_true", help="refine inside the top hits with a grounder")
    g.add_argument("--backend", choices=sorted(GROUNDERS), default="vllm", help="grounder (default: vllm)")
    g.add_argument("--model", help="hf: hub id or folder; vllm: served model name")
    g.add_argument("--server", help="vLLM OpenAI API URL")
    g.add_argument(
        "--ground-videos", type=positive_int, default=LIBRARY.ground_videos, help="videos to refine in"
    )
    g.add_argument(
        "--ground-calls", type=positive_int, default=LIBRARY.ground_calls, help="grounder calls in all"
    )
    g.add_argument("--pad", type=positive_float, default=LIBRARY.ground_pad_s, help="seconds around each hit")


def run(args: argparse.Namespace) -> int:
    from grounding_agent.library import Library

    channels = [c.strip() for c in args.channels.split(",") if c.strip()] if args.channels else None
    library = Library(args.library or LIBRARY.folder, saliency=args.saliency_model)
    if args.ground:
        answer = library.ground(
            args.query,
            grounder=_grounder(args),
            k_videos=args.ground_videos,
            call_budget=args.ground_calls,
            pad_s=args.pad,
        )
        if args.json:
            print_json(answer.to_dict())
            return 0
        with contextlib.redirect_stdout(CleanWriter(sys.stdout)):
            for g in answer.grounded:
                where = "no moment" if g.moment is None else f"{g.moment.start_s:.2f}-{g.moment.end_s:.2f} s"
                print(f"{g.hit.path}: {where} (window {g.window_s[0]:.2f}-{g.window_s[1]:.2f} s)")
            print(f"looked at {answer.videos_looked_at} videos, {answer.seconds_looked_at:.1f} s of video, "
                  f"{answer.grounder_calls} grounder calls")  # fmt: skip
        return 0
    hits = library.search(args.query, k=args.k, channels=channels)
    if args.json:
        print_json({"query": args.query, "library": library.location, "hits": [h.to_dict() for h in hits]})
        return 0
    with contextlib.redirect_stdout(CleanWriter(sys.stdout)):
        if not hits:
            print("no hits")
        for i, h in enumerate(hits, 1):
            print(f"{i}. {h.path}  {h.start_s:.2f}-{h.end_s:.2f} s  score {h.score:.4f}")
            for e in h.evidence[:4]:
                text = f" {e.text[:80]}" if e.text else ""
                print(f"     {e.kind} ({e.source}) {e.start_s:.2f}-{e.end_s:.2f} s{text}")
    return 0


def _grounder(args: argparse.Namespace):
    from grounding_agent.grounders.registry import make_grounder

    options = {}
    if args.backend in ("vllm", "hf"):
        options = {"model": args.model}
        if args.backend == "vllm" and args.server:
            options["server"] = args.server
    return make_grounder(args.backend, **options)
