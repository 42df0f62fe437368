"""What an HLS playlist says before and after FFmpeg plays it: whether it loops back on itself (a master
playlist whose variant is itself or an ancestor: refused before anything plays), whether it has ended
(`#EXT-X-ENDLIST`), whether a live one still grows (its media sequence and segment count) and how often
it should (`#EXT-X-TARGETDURATION`), so that a watch ending on an HLS source can say why in one line
instead of replaying the same segments, and tell a dead publisher (same playlist) from a dead server (none).

    info = read_playlist("http://127.0.0.1:8080/live.m3u8", timeout_s=10)   # None: not reachable as text
    info.ended, info.position, info.target_s                                 # True, (0, 12), 2.0
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from grounding_agent.errors import StreamError

__all__ = ["Playlist", "is_hls", "read_playlist"]

MAX_DEPTH = 4  # master -> variant -> ...: deeper than this is a loop in all but name
MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Playlist:
    url: str  # the media playlist (after following master playlists)
    ended: bool  # #EXT-X-ENDLIST: nothing will be added
    position: tuple[int, int]  # (media sequence, segments listed): a live playlist that grows changes it
    target_s: float = 0.0  # #EXT-X-TARGETDURATION: a live publisher adds a segment at least this often


def is_hls(spec: str) -> bool:
    parts = urlsplit(spec)
    return parts.scheme in ("http", "https") and parts.path.lower().endswith(".m3u8")


def read_playlist(url: str, timeout_s: float) -> Playlist | None:
    """The media playlist `url` leads to (None when it cannot be read as a playlist: FFmpeg then says why).

    Raises:
        StreamError: the playlist loops (a variant refers back to a playlist on the way to it).
    """
    seen: list[str] = []
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        while len(seen) <= MAX_DEPTH:
            seen.append(url)
            text = _get(client, url)
            if text is None:
                return None
            variants = [urljoin(url, line.strip()) for line in _after(text, "#EXT-X-STREAM-INF")]
            if not variants:
                return _media(url, text)
            if variants[0] in seen:
                raise StreamError(
                    f"{seen[0]}: playlist loop ({variants[0]} refers back to a playlist on the way to it); "
                    "give the URL of a media playlist"
                )
            url = variants[0]
    raise StreamError(
        f"{seen[0]}: playlist loop (more than {MAX_DEPTH} nested playlists); give a media playlist"
    )


def _get(client: httpx.Client, url: str) -> str | None:
    try:
        reply = client.get(url)
    except httpx.HTTPError:
        return None
    body = reply.content[:MAX_BYTES].decode("utf-8", "replace")
    return body if reply.is_success and body.lstrip("\ufeff").startswith("#EXTM3U") else None


def _after(text: str, tag: str) -> list[str]:
    """The URI line after each `tag` line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return [lines[k + 1] for k, line in enumerate(lines[:-1]) if line.startswith(tag)]


def _media(url: str, text: str) -> Playlist:
    sequence, target_s = 0, 0.0
    for line in text.splitlines():
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            value = line.split(":", 1)[1].strip()
            sequence = int(value) if value.isdigit() else 0
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            value = line.split(":", 1)[1].strip()
            target_s = float(value) if value.isdigit() else 0.0
    segments = sum(1 for line in text.splitlines() if line.startswith("#EXTINF"))
    return Playlist(url, "#EXT-X-ENDLIST" in text, (sequence, segments), target_s)
