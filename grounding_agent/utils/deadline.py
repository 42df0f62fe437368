"""Wall-clock deadlines for blocking calls to a server.

HTTP clients time out *per read*: a server that trickles one byte a second never trips them. These
helpers bound the whole call instead.

    result = call_with_deadline(lambda: model.invoke(messages), 30.0, what="the planner LLM")
    result = run_blocking(coroutine)      # an async call from synchronous code
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from grounding_agent.errors import ServerError

T = TypeVar("T")


def deadline_error(what: str, timeout_s: float) -> ServerError:
    return ServerError(
        f"{what} did not answer within {timeout_s:g} s (--timeout is the total time per request); "
        "raise --timeout or ask for less"
    )


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous code, also when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def call_with_deadline(fn: Callable[[], T], timeout_s: float, *, what: str) -> T:
    """`fn()` if it returns within `timeout_s` seconds; else a `ServerError` now.

    The call runs in a daemon thread. On time-out it is abandoned, not killed (a blocking socket read
    cannot be interrupted from outside): it ends at the client's own per-read timeout, and never keeps
    the process from exiting.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread as is
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=work, name="deadline-call", daemon=True).start()
    if not done.wait(timeout_s):
        raise deadline_error(what, timeout_s)
    if "error" in box:
        raise box["error"]
    return box["value"]
