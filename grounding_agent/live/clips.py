"""`--clip`: each alert's moment (with `pre_s` before and `post_s` after) cut from the ring recording as an
mp4, with an OTIO timeline and (at SMPTE rates) a CMX EDL beside it, in a worker thread while the stream
goes on. A clip is cut once the ring has closed the segment holding its end; at the end of the watch, what
the ring holds is cut.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from grounding_agent.edit import export, plan_edit
from grounding_agent.edit.exports import rate_problem
from grounding_agent.errors import GroundingAgentError
from grounding_agent.live.ring import RingRecorder

__all__ = ["ClipJob", "ClipWriter"]

log = logging.getLogger(__name__)


@dataclass
class ClipJob:
    seq: int  # the alert event's number
    start_s: float
    end_s: float
    future: Future[list[Path]] | None = None


class ClipWriter:
    def __init__(self, ring: RingRecorder, folder: str | Path):
        self.ring, self.folder = ring, Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip")
        self.jobs: list[ClipJob] = []
        self.failed = 0

    def schedule(self, seq: int, start_s: float, end_s: float) -> None:
        self.jobs.append(ClipJob(seq, max(0.0, start_s), end_s))

    def poll(self, final: bool = False) -> list[tuple[ClipJob, list[Path] | str]]:
        """Start the jobs the ring can serve; the finished ones as (job, files or a one-line error)."""
        done = []
        for job in list(self.jobs):
            if job.future is None and (final or self.ring.closed_until_s >= job.end_s):
                end_s = min(job.end_s, self.ring.closed_until_s)
                job.future = self._pool.submit(self._write, job.seq, job.start_s, end_s)
            if job.future is not None and (final or job.future.done()):
                self.jobs.remove(job)
                try:
                    done.append((job, job.future.result()))
                except (GroundingAgentError, OSError) as exc:
                    self.failed += 1
                    done.append((job, str(exc).splitlines()[0]))
        return done

    def _write(self, seq: int, start_s: float, end_s: float) -> list[Path]:
        mp4 = self.ring.cut(start_s, end_s, self.folder / f"alert-{seq:05d}.mp4")
        plan = plan_edit(mp4, f"keep from 0 to {end_s - start_s:.3f} seconds")
        files = [mp4, export(plan, mp4.with_suffix(".otio"))]
        if rate_problem(plan.grid.rate, ".edl") is None:
            files.append(export(plan, mp4.with_suffix(".edl")))
        return files

    def close(self) -> None:
        self._pool.shutdown(wait=True)
