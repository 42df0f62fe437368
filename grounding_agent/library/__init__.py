"""The video library: index a folder of videos once, search every video by what is seen, said and written,
ground inside the best hits (issue 31).

- `core`: `Library` (index, search, ground, videos, session);
- `records`: `VideoRecord`, `IndexRow`/`IndexReport`, `LibraryVideo`, `SearchHit`, `LibraryAnswer`;
- `pipeline`: the index stages as plain functions (`decode`, `embed`, `transcribe`, `read_text`,
  `index_one`) over one video, so a Ray Data job can run them as map steps; `Models`;
- `frames`: one decode per video for the visual and OCR channels (OCR on changed frames only);
- `scan`: the files under the given paths (symlink loops, non-videos skipped with reasons);
- `store`: SQLite + sqlite-vec + FTS5 in one WAL file, schema migrations, typed errors; `lock`, `repair`;
- `pg_store`: the same on a PostgreSQL server a team shares (`--library postgresql://...`); `store_api`:
  the `LibraryStore` protocol both satisfy, and which location names which;
- `ann`: the visual channel's faiss IVF-SQ8 index, a rebuildable side file beside the store (`AnnIndex`:
  `sync` from any store's row batches, `search`);
- `search`: hybrid retrieval fused by reciprocal rank, plans composed across channels;
- `ground`: retrieve-then-ground.

May import: the core modules (`types`, `errors`, `defaults`, `io`), `utils`, `media`, `highlights`,
`grounders`, `agent`, `conversation`; never `cli`, `http` or `ui`.
"""

from grounding_agent.library.core import Library
from grounding_agent.library.pipeline import Models, index_one
from grounding_agent.library.records import (
    CHANNELS,
    GroundedHit,
    IndexReport,
    IndexRow,
    LibraryAnswer,
    LibraryVideo,
    SearchHit,
    VideoRecord,
)
from grounding_agent.library.repair import repair
from grounding_agent.library.store import Store

__all__ = [
    "CHANNELS",
    "GroundedHit",
    "IndexReport",
    "IndexRow",
    "Library",
    "LibraryAnswer",
    "LibraryVideo",
    "Models",
    "SearchHit",
    "Store",
    "VideoRecord",
    "index_one",
    "repair",
]
