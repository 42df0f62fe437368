"""`index --repair`: a damaged store is moved aside (never deleted) and a fresh one made in its place; the
`index` run that follows fills it again. That is cheap: every channel's model output is cached by file
content (embeddings, transcripts, OCR), so only the store's rows are rewritten, no model runs again."""

from __future__ import annotations

import time
from pathlib import Path

from grounding_agent.errors import LibraryError, LibraryStoreError
from grounding_agent.library.lock import writer_lock
from grounding_agent.library.store import DB_NAME, Store

SIDE_FILES = ("-wal", "-shm")


def repair(folder: str | Path) -> dict[str, object]:
    """Check the store in `folder`; if it is damaged, move it aside and salvage it. Returns what was done."""
    folder = Path(folder).expanduser()
    db = folder / DB_NAME
    if not db.is_file():
        raise LibraryError(f"no library store at {db}; nothing to repair")
    with writer_lock(folder):
        try:
            store = Store.open(folder)
            store.check()
            store.query("INSERT INTO texts_fts(texts_fts) VALUES ('integrity-check')")
            store.close()
            return {"damaged": False, "kept": None}
        except LibraryStoreError:
            pass
        kept = db.with_name(f"{DB_NAME}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        db.rename(kept)
        for suffix in SIDE_FILES:
            side = db.with_name(DB_NAME + suffix)
            if side.exists():
                side.rename(kept.with_name(kept.name + suffix))
        Store.open(folder, create=True).close()
        return {"damaged": True, "kept": str(kept)}
