"""One chat turn as server-sent events (FastAPI's `fastapi.sse`), each sent as soon as the turn emits it.

Events, in order: "reference" (a follow-up's earlier turn), "plan", "step" (each grounded sub-event, as it
is grounded), "moments", "text", then "answer" (or "error" with its HTTP status), then "done".
The turn runs in a worker thread (`Service.run`); its events cross to the event loop through an anyio
memory stream. A client that disconnects does not cut the turn in half: it runs to its end.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.from_thread
from fastapi.sse import ServerSentEvent, format_sse_event

from grounding_agent.errors import GroundingAgentError
from grounding_agent.http.state import Service, status_of
from grounding_agent.io import dumps_json


def encode(event: ServerSentEvent) -> bytes:
    """The wire form of one event; data through `dumps_json` (NaN -> null, like the JSON answers)."""
    return format_sse_event(data_str=dumps_json(event.data), event=event.event)


async def turn_events(svc: Service, sid: str, entry: tuple[Any, str], message: str) -> AsyncIterator[bytes]:
    """`session.ask(message)` in a worker thread, its events yielded as they happen; `entry` is the
    (session, video) that `svc.sessions.begin(sid)` gave."""
    send, receive = anyio.create_memory_object_stream[ServerSentEvent](math.inf)

    def on_event(kind: str, data: Any) -> None:  # in the worker thread
        try:
            anyio.from_thread.run_sync(send.send_nowait, ServerSentEvent(event=kind, data=data))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client left: the turn still runs to its end

    async def turn() -> None:
        async with send:
            try:
                answer = await svc.run(entry[0].ask, message, on_event=on_event)
                send.send_nowait(ServerSentEvent(event="answer", data=answer.to_dict()))
            except GroundingAgentError as exc:
                send.send_nowait(
                    ServerSentEvent(event="error", data={"detail": svc.detail(exc), "status": status_of(exc)})
                )
            finally:
                svc.sessions.end(sid, entry)  # the time to live counts from the end of the last turn
            send.send_nowait(ServerSentEvent(event="done", data={}))

    async with anyio.create_task_group() as tasks, receive:
        tasks.start_soon(turn)
        async for event in receive:
            yield encode(event)
