"""`grounding-agent index PATH...`: add videos to a library (incremental, resumable after a kill).

grounding-agent index ~/rushes --library ~/rushes-lib --saliency-model CLIP_DIR --asr-model WHISPER_DIR
grounding-agent index ~/rushes --library ~/rushes-lib --no-visual --asr-model WHISPER_DIR --no-ocr
grounding-agent index --repair --library ~/rushes-lib        # a damaged store: moved aside, made afresh
grounding-agent index ~/rushes --library postgresql://me@db.lan:5432/rushes --no-visual --no-speech  # a team's
"""

from __future__ import annotations

import argparse
import sys

from grounding_agent.cli._common import fps_float, print_json
from grounding_agent.defaults import LIBRARY

LIBRARY_HELP = (
    f"library folder (default {LIBRARY.folder}), or postgresql://USER@HOST:PORT/DATABASE for a library a "
    "team shares (the password in the URL or PGPASSWORD; docs/library.md)"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="*", metavar="PATH", help="video files or folders (walked recursively)")
    p.add_argument("--library", metavar="DIR|URL", help=LIBRARY_HELP)
    for channel, what in (
        ("visual", "frame embeddings"),
        ("speech", "transcripts"),
        ("ocr", "on-screen text"),
    ):
        p.add_argument(f"--no-{channel}", action="store_true", help=f"skip the {channel} channel ({what})")
    p.add_argument(
        "--saliency-model", metavar="DIR", help="CLIP/SigLIP folder or hub id (the visual channel)"
    )
    p.add_argument("--asr-model", metavar="DIR", help="CTranslate2 Whisper folder (the speech channel)")
    p.add_argument(
        "--fps",
        type=fps_float,
        default=LIBRARY.visual_fps,
        help=f"frames embedded per second of video (default {LIBRARY.visual_fps:g})",
    )
    p.add_argument(
        "--repair", action="store_true", help="check the store; move a damaged one aside, start afresh"
    )
    p.add_argument(
        "--ray", metavar="ADDRESS", help="run the index stages as a Ray Data job on this cluster (host:port); "
        "the writes stay here (docs/scale-out.md)",
    )  # fmt: skip
    p.add_argument("--json", action="store_true", help="print the per-file report as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from grounding_agent.errors import LibraryError
    from grounding_agent.library import Library, repair
    from grounding_agent.library.store_api import is_server_url

    folder = args.library or LIBRARY.folder
    if args.repair and is_server_url(folder):
        raise LibraryError(
            "--repair mends a library folder; a PostgreSQL library needs none (the server rolls a killed "
            "writer back): run `index` again"
        )
    if args.repair:
        done = repair(folder)
        print(f"store {'was damaged: moved to ' + str(done['kept']) if done['damaged'] else 'is sound'}"
              f"{'; run index again to fill the new one' if done['damaged'] else ''}")  # fmt: skip
        if not args.paths:
            return 0
    if not args.paths:
        raise LibraryError("give the video files or folders to index (or --repair alone)")
    channels = tuple(c for c in ("visual", "speech", "ocr") if not getattr(args, f"no_{c}"))
    if not channels:
        raise LibraryError("--no-visual --no-speech --no-ocr leaves nothing to index; keep one channel")
    library = Library(folder, create=True, saliency=args.saliency_model, transcriber=args.asr_model)
    if args.ray:  # the same stages on the cluster; each node loads the models from the same folders
        from grounding_agent.library.ray_index import ModelDirs, index_on_ray

        dirs = ModelDirs(args.saliency_model, args.asr_model, args.fps)
        return _report(
            args, library, index_on_ray(library, args.paths, address=args.ray, channels=channels, models=dirs)
        )
    models = library.models(channels)
    models.visual_fps = args.fps
    report = library.index(args.paths, channels=channels, models=models, on_progress=_progress(args))
    return _report(args, library, report)


def _report(args: argparse.Namespace, library, report) -> int:
    if args.json:
        print_json({"library": library.location, **report.to_dict()})
        return 0
    for row in report.rows:
        if row.status in ("skipped", "removed"):
            print(f"{row.status}: {row.path}: {row.reason}")
    counts = report.to_dict()["counts"]
    print(
        ", ".join(f"{n} {s}" for s, n in counts.items()) + f" in {report.wall_s:.1f} s -> {library.location}"
    )
    return 0


def _progress(args: argparse.Namespace):
    if args.quiet or args.json or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(desc="index", unit="file", file=sys.stderr)

    def step(row) -> None:
        bar.set_postfix_str(f"{row.status} {row.path[-40:]}")
        bar.update(1)

    return step
