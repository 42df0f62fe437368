"""`grounding-agent ui [--host 127.0.0.1] [--port P] [--media-root DIR]` plus `ground`'s backend options.

    grounding-agent ui --media-root ../shared/data/videos --backend uniform          # model-free, to try it
    grounding-agent ui --media-root videos/ --server http://127.0.0.1:8000/v1 --model timestamps

A Gradio app over `Session`: pick (or upload) a video, chat with follow-ups, click a moment to seek the
player, see the timeline and thumbnails, plan an edit and download it. The grounder is built once and
shared by every browser session. Served by uvicorn (`ui.server`): only requests whose Host is the bind
address, localhost or 127.0.0.1 are answered (400 otherwise; `--allowed-host` adds names).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from grounding_agent.cli._common import port, positive_int
from grounding_agent.cli.api import add_log_option, allowed_hosts
from grounding_agent.cli.options import add_backend_options, build_grounder
from grounding_agent.defaults import LOCAL_HOST, UI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--host", default=LOCAL_HOST, help=f"address to listen on (default {LOCAL_HOST}: this machine only)"
    )
    p.add_argument("--port", type=port, default=UI.port, help=f"port (default {UI.port})")
    p.add_argument("--media-root", type=Path, default=Path("."), help="folder the videos are picked from")
    p.add_argument(
        "--library",
        metavar="DIR|URL",
        help="add a tab that searches this library (its videos in the media root)",
    )
    p.add_argument(
        "--output-dir", type=Path, help="where timelines, exports and renders go (default: a temp folder)"
    )
    p.add_argument(
        "--max-upload-mb",
        type=positive_int,
        default=UI.max_upload_mb,
        help=f"largest upload accepted (default {UI.max_upload_mb} MB)",
    )
    p.add_argument(
        "--max-sessions",
        type=positive_int,
        default=UI.max_sessions,
        help=f"sessions kept in memory (default {UI.max_sessions}); a dropped one's outputs and upload "
        "are deleted",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also serve requests whose Host header is NAME (repeatable; '*' any). Default: the bind "
        "address, localhost and 127.0.0.1",
    )
    add_backend_options(p)
    add_log_option(p.add_argument_group("service"))


def run(args: argparse.Namespace) -> int:
    from grounding_agent.errors import ConfigError
    from grounding_agent.utils.extras import require

    require("ui", "gradio", feature="grounding-agent ui")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")
    from grounding_agent.ui.app import UIConfig, build_app
    from grounding_agent.ui.server import serve

    output = args.output_dir or Path(tempfile.mkdtemp(prefix="grounding-agent-ui-"))
    config = UIConfig(
        args.media_root, output, max_upload_mb=args.max_upload_mb, max_sessions=args.max_sessions
    )
    library = None
    if args.library:
        from grounding_agent.library import Library

        library = Library(args.library)
    whisper = None
    if args.asr_model:  # the live tab's speech alerts transcribe with their own copy (as `api --streams`)
        from grounding_agent.media.asr import load_whisper

        whisper = load_whisper(args.asr_model, compute_type="int8")
    app = build_app(config, session_factory(args), library, whisper)
    print(f"grounding-agent ui: http://{args.host}:{args.port}  (media root {config.media_root.resolve()})")
    from grounding_agent.http.access import configure, log_start

    configure(args.log_level)
    log_start(
        "ui",
        f"http://{args.host}:{args.port}",
        media_root=config.media_root.resolve(),
        backend=args.backend,
        model=args.model,
    )
    serve(app, config, args.host, args.port, allowed_hosts(args.host, args.allowed_host))
    return 0


def session_factory(args: argparse.Namespace):
    """`path -> Session` with one grounder (and agent) built from the options, shared by all sessions."""
    from grounding_agent.cli.options import build_session

    grounder = build_grounder(args)

    def make(path: Path):
        return build_session(args, path, grounder=grounder)

    return make
