"""Retrieve-then-ground: search the library, then let a grounder refine inside the best candidates.

Search picks at most `k_videos` videos (their best hit each); the grounder sees only a window of `pad_s`
around each hit, within `call_budget` calls in all. The answer says how many videos and seconds it looked at,
so a caller can tell a cheap answer from an exhaustive one.
"""

from __future__ import annotations

from collections.abc import Callable

from grounding_agent.defaults import LIBRARY
from grounding_agent.errors import LibraryError
from grounding_agent.grounders.base import Grounder
from grounding_agent.library.records import GroundedHit, LibraryAnswer, SearchHit
from grounding_agent.media.decode import sample_frames
from grounding_agent.media.video import open_video

Search = Callable[[str, int], list[SearchHit]]  # (query, k) -> hits, best first: `Library.search`


def retrieve_then_ground(
    search: Search,
    query: str,
    grounder: Grounder,
    *,
    k_videos: int = LIBRARY.ground_videos,
    call_budget: int = LIBRARY.ground_calls,
    pad_s: float = LIBRARY.ground_pad_s,
) -> LibraryAnswer:
    """The grounder's best moment inside each of the top videos' best hit windows (see the module doc)."""
    if k_videos < 1 or call_budget < 1:
        raise LibraryError(f"k_videos and call_budget must be >= 1, got {k_videos} and {call_budget}")
    hits = search(query, max(LIBRARY.search_k, k_videos))
    firsts: dict[int, SearchHit] = {}
    for h in hits:
        firsts.setdefault(h.video_id, h)
    grounded, seconds = [], 0.0
    for hit in list(firsts.values())[: min(k_videos, call_budget)]:
        video = open_video(hit.path)
        start, end = max(0.0, hit.start_s - pad_s), min(video.duration_s, hit.end_s + pad_s)
        frames = sample_frames(
            video,
            fps=grounder.fps,
            max_frames=grounder.max_frames,
            max_pixels=grounder.max_pixels,
            start_s=start,
            end_s=end,
        )
        answer = grounder.ground(video, query, top_k=1, frames=frames)
        grounded.append(GroundedHit(hit, answer.best, (start, end)))
        seconds += end - start
    return LibraryAnswer(query, tuple(hits), tuple(grounded), len(grounded), seconds, len(grounded))
