"""`grounding-agent api`: the HTTP service (FastAPI + uvicorn) in front of the agent.

    grounding-agent api --media-root ~/videos --server http://127.0.0.1:8000/v1 --port 8080
    curl -s localhost:8080/v1/ground -d '{"video": "clip.mp4", "query": "person opens the door"}' \
         -H 'content-type: application/json'

One grounder (and agent) is loaded at start and shared by every session. Same backend options as
`ground`; `--backend uniform` serves without a model. OpenAPI docs at /docs. Only requests whose Host is
the bind address, localhost or 127.0.0.1 are served (400 otherwise; `--allowed-host` adds names).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from grounding_agent.cli._common import port, positive_float, positive_int
from grounding_agent.cli.options import add_backend_options, build_agent, build_grounder, build_session
from grounding_agent.defaults import HTTP_SERVICE as LIMITS
from grounding_agent.defaults import LIVE, LOCAL_HOST, LOCAL_NAMES
from grounding_agent.http.access import LEVELS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--media-root", required=True, help="folder the request paths are relative to")
    p.add_argument("--host", default=LOCAL_HOST, help=f"address to listen on (default {LOCAL_HOST})")
    p.add_argument("--port", type=port, default=LIMITS.port, help=f"port (default {LIMITS.port})")
    p.add_argument(
        "--library",
        metavar="DIR|URL",
        help="serve POST /v1/search and /v1/library/sessions over this library",
    )
    p.add_argument("--streams", metavar="DIR",
                   help="serve /v1/streams (live watches of stream URLs; speech alerts need --asr-model), "
                   f"their recordings under DIR (at most {LIVE.max_streams} at once)")  # fmt: skip
    add_backend_options(p)
    s = p.add_argument_group("service")
    s.add_argument(
        "--max-sessions",
        type=positive_int,
        default=LIMITS.max_sessions,
        help="sessions kept (LRU beyond that)",
    )
    s.add_argument(
        "--session-ttl-s",
        type=positive_float,
        default=LIMITS.session_ttl_s,
        help="seconds after a session's last turn before expiry",
    )
    s.add_argument(
        "--max-concurrency", type=positive_int, default=LIMITS.max_concurrency, help="model calls at once"
    )
    s.add_argument(
        "--max-pending",
        type=positive_int,
        default=LIMITS.max_pending,
        help="requests that may wait (more: 503)",
    )
    s.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also serve requests whose Host header is NAME (repeatable; '*' any). Default: the bind "
        f"address, {' and '.join(LOCAL_NAMES)}",
    )
    add_limit_options(s)
    add_log_option(s)


def add_log_option(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="start line and access log (method, path, status, duration) on stderr at this level "
        "(default info; warning silences them)",
    )


# (option, ServiceLimits field, what it bounds): each a positive whole number, default from `LIMITS`.
LIMIT_OPTIONS = (
    ("--max-body-bytes", "max_body_bytes", "bytes of one request body (more: 413)"),
    ("--max-query-chars", "max_query_chars", "characters of a /v1/ground query"),
    ("--max-message-chars", "max_message_chars", "characters of a chat message"),
    ("--max-path-chars", "max_path_chars", "characters of a video path"),
    ("--max-top-k", "max_top_k", "moments one /v1/ground request may ask for"),
)


def add_limit_options(group: argparse._ArgumentGroup) -> None:
    for option, field, what in LIMIT_OPTIONS:
        default = getattr(LIMITS, field)
        group.add_argument(option, type=positive_int, default=default, help=f"{what} (default {default})")


def allowed_hosts(host: str, extra: list[str]) -> list[str]:
    """The Host header values served: the bind address (unless it is a wildcard), localhost, `extra`."""
    bound = [] if host in ("0.0.0.0", "::", "") else [host.strip("[]")]
    return list(dict.fromkeys([*bound, *LOCAL_NAMES, *extra]))


def make_app(args: argparse.Namespace):
    """The FastAPI app for parsed options (the grounder/agent loaded once)."""
    from dataclasses import replace

    from grounding_agent.http import create_app

    grounder = build_grounder(args)
    agent = None if args.agent is False else build_agent(args, grounder)
    app = create_app(
        lambda path: build_session(args, path, grounder=grounder, agent=agent),
        media_root=args.media_root,
        grounder_name=grounder.name,
        max_sessions=args.max_sessions,
        ttl_s=args.session_ttl_s,
        max_concurrency=args.max_concurrency,
        max_pending=args.max_pending,
        limits=replace(LIMITS, **{field: getattr(args, field) for _, field, _ in LIMIT_OPTIONS}),
        allowed_hosts=allowed_hosts(args.host, args.allowed_host),
    )
    if args.library:  # opened once; the store is thread-safe (one connection behind a lock)
        from grounding_agent.library import Library

        app.state.library = Library(args.library)
    if args.streams:  # opt-in: a watch records to disk and runs until stopped
        from grounding_agent.live.registry import StreamRegistry
        from grounding_agent.media.asr import load_whisper

        whisper = load_whisper(args.asr_model, compute_type="int8") if args.asr_model else None
        app.state.streams = StreamRegistry(_streams_folder(args.streams), whisper=whisper)
    return app


def _streams_folder(path: str) -> Path:
    from grounding_agent.errors import OutputError

    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"--streams {path}: cannot create it ({exc.strerror}); give a writable folder"
        ) from None
    return Path(path)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from grounding_agent.http.access import configure, log_start

    configure(args.log_level)
    app = make_app(args)
    log_start(
        "api",
        f"http://{args.host}:{args.port}",
        media_root=Path(args.media_root).resolve(),
        backend=args.backend,
        grounder=app.state.service.grounder_name,
        model=args.model,
    )
    # Our AccessLog middleware writes the access lines (with durations); uvicorn's own would go to stdout.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
