"""Work started before it is needed, in background threads: a video's frames sampled and encoded as
`VLLMGrounder.ground` would (`FramePrefetch`, for the CLI's `ground`), and the process's TLS context.

`encode_frames` turns frames into the data URLs vLLM requests carry, in parallel threads.
"""

from __future__ import annotations

import os
import ssl
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from grounding_agent.defaults import SERVED_SAMPLING
from grounding_agent.errors import ConfigError
from grounding_agent.grounders.qwen_inputs import encode_image
from grounding_agent.types import Frames, Video


def encode_frames(
    frames: Frames, image_format: Literal["jpeg", "png"], cache: dict[int, str] | None = None
) -> dict[int, str]:
    """`cache` (frame position -> data URL) holding every frame: the missing ones are encoded in parallel
    threads (PIL releases the GIL while it compresses); each URL is what `encode_image` makes alone."""
    from grounding_agent.media.decode import usable_cores  # loaded already: these frames were decoded by it

    cache = {} if cache is None else cache
    todo = [i for i in range(len(frames)) if i not in cache]
    workers = min(usable_cores(), len(todo))

    def encode(i: int) -> str:
        return encode_image(frames.pixels[i], image_format)

    if workers < 2:
        cache.update(zip(todo, map(encode, todo)))
        return cache
    with ThreadPoolExecutor(workers, thread_name_prefix="encode") as pool:
        cache.update(zip(todo, pool.map(encode, todo)))
    return cache


@dataclass
class PreparedFrames:
    """What `FramePrefetch` made: the frames, their data URLs and the seconds each step took."""

    frames: Frames
    urls: dict[int, str]
    image_format: str
    timings_s: dict[str, float]  # "decode", "preprocess" (the encoding)


class FramePrefetch:
    """Sample and encode one video's frames in a worker thread, as `VLLMGrounder.ground` would.

    A CLI `ground` starts it before making the grounder: the main thread imports the HTTP client and
    asks the server for its models while decoding and compressing run in C (PyAV and PIL release the
    GIL). `result()` waits, and re-raises here whatever the worker raised (a typed `VideoError`).
    A run that fails meanwhile exits when the decode ends (decoders are not stopped mid-frame).
    """

    def __init__(
        self,
        video: Video,
        *,
        fps: float = SERVED_SAMPLING.fps,
        max_frames: int = SERVED_SAMPLING.max_frames,
        max_pixels: int | None = SERVED_SAMPLING.max_pixels,
        image_format: Literal["jpeg", "png"] = "jpeg",
    ):
        self.video, self.image_format = video, image_format
        self._sampling = {"fps": fps, "max_frames": max_frames, "max_pixels": max_pixels}
        self._future: Future[PreparedFrames] = _AHEAD.submit(self._prepare)

    def result(self) -> PreparedFrames:
        """The prepared frames, once the worker is done; what it raised is raised here."""
        return self._future.result()

    def _prepare(self) -> PreparedFrames:
        from grounding_agent.media.decode import sample_frames, usable_cores

        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        # What `frames_for` does, on all cores but one: the caller's thread keeps importing meanwhile.
        threads = max(1, usable_cores() - 1)
        frames = sample_frames(self.video, **self._sampling, cache=True, threads=threads)
        timings["decode"] = time.perf_counter() - t0
        urls = encode_frames(frames, self.image_format)
        timings["preprocess"] = time.perf_counter() - t0 - timings["decode"]
        return PreparedFrames(frames, urls, self.image_format, timings)


# Work started before it is needed (the CA bundle, a CLI's frames); its threads start on the first submit.
_AHEAD = ThreadPoolExecutor(2, thread_name_prefix="ahead")
_TLS_LOCK = threading.Lock()
_TLS: Future[ssl.SSLContext] | None = None


def tls_context() -> ssl.SSLContext:
    """The process's verifying context (made once; a failure is not kept: the next client tries again)."""
    global _TLS
    future = start_tls_context()
    try:
        return future.result()
    except BaseException:
        with _TLS_LOCK:
            if _TLS is future:
                _TLS = None
        raise


def start_tls_context() -> Future[ssl.SSLContext]:
    """Start loading the context in the background (once): reading the CA bundle (~40 ms) releases the
    GIL, so it is done by the time the HTTP client has been imported."""
    global _TLS
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = _AHEAD.submit(_new_tls_context)
        return _TLS


def _new_tls_context() -> ssl.SSLContext:
    """A verifying context: $SSL_CERT_FILE or $SSL_CERT_DIR if set, else certifi's CA bundle.

    The context `httpx.create_ssl_context()` makes, made in the background while the HTTP client's
    import runs.
    """
    for variable, kind in (("SSL_CERT_FILE", "cafile"), ("SSL_CERT_DIR", "capath")):
        if location := os.environ.get(variable):
            try:
                return ssl.create_default_context(**{kind: location})
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"cannot load CA certificates from ${variable}={location!r} ({exc}): point it at a "
                    "PEM bundle (or folder), or unset it to use certifi's"
                ) from None
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
