"""`grounding-agent api`: the HTTP service (FastAPI + uvicorn) in front of the agent.

    grounding-agent api --media-root ~/videos --server http://127.0.0.1:8000/v1 --port 8080
    curl -s localhost:8080/v1/ground -d '{"video": "clip.mp4", "query": "person opens the door"}' \
         -H 'content-type: application/json'

One grounder (and agent) is loaded at start and shared by every session. Same backend options as
`ground`; `--backend uniform` serves without a model. OpenAPI docs at /docs.
"""

from __future__ import annotations

import argparse

from grounding_agent.cli._common import port, positive_float, positive_int
from grounding_agent.cli.options import add_backend_options, build_agent, build_grounder, build_session
from grounding_agent.defaults import HTTP_SERVICE as LIMITS
from grounding_agent.defaults import LOCAL_HOST


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--media-root", required=True, help="folder the request paths are relative to")
    p.add_argument("--host", default=LOCAL_HOST, help=f"address to listen on (default {LOCAL_HOST})")
    p.add_argument("--port", type=port, default=LIMITS.port, help=f"port (default {LIMITS.port})")
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


def make_app(args: argparse.Namespace):
    """The FastAPI app for parsed options (the grounder/agent loaded once)."""
    from grounding_agent.http import create_app

    grounder = build_grounder(args)
    agent = None if args.agent is False else build_agent(args, grounder)
    return create_app(
        lambda path: build_session(args, path, grounder=grounder, agent=agent),
        media_root=args.media_root,
        grounder_name=grounder.name,
        max_sessions=args.max_sessions,
        ttl_s=args.session_ttl_s,
        max_concurrency=args.max_concurrency,
        max_pending=args.max_pending,
    )


def run(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(make_app(args), host=args.host, port=args.port, log_level="warning")
    return 0
