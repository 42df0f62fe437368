"""Grounding through vLLM's OpenAI-compatible server (the production path).

Frames travel as base64 image parts, each preceded by its timestamp text `<t seconds>` (see
`qwen_inputs`): portable across Qwen generations and server versions, and the video + timestamps come
before the query so several queries on one video share a prefix that vLLM's prefix cache reuses.
A LoRA adapter served with `--lora-modules name=path` is selected by passing its name as `model`.

Confidence: greedy -> exp(mean token log-prob) of the answer from the server's `logprobs`;
`num_samples=n > 1` -> agreement between the n answers (see `base.rank_candidates`).
Format forcing (`structured=True`): a regex in the request's `"structured_outputs": {"regex": ...}`
(the legacy `guided_*` fields are silently ignored by current vLLM).

The two API calls go over httpx2 (`openai_http`: the openai SDK's retries and checks without its
0.5-0.9 s import). Importing this module is light: the HTTP client loads when the first one is made, so
a caller can start decoding frames first (`prefetch.FramePrefetch`) and have both happen at once.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from grounding_agent.defaults import SERVED_SAMPLING, SERVER, TOKENS
from grounding_agent.errors import ConfigError, ServerError
from grounding_agent.grounders.base import (
    BaseGrounder,
    Grounding,
    check_request,
    grounding_from_answers,
    timed,
)
from grounding_agent.grounders.describe import (
    DESCRIBE_MAX_FRAMES,
    DescribeRequest,
    Description,
    describe_content,
    spread,
)
from grounding_agent.grounders.prefetch import FramePrefetch, encode_frames, start_tls_context, tls_context
from grounding_agent.grounders.qwen_inputs import (
    GroundingRequest,
    build_request,
    encode_image,
    openai_messages,
)
from grounding_agent.grounders.serving import check_server_url
from grounding_agent.types import Frames, Moment, Video
from grounding_agent.utils.cache import BoundedCache
from grounding_agent.utils.deadline import deadline_error, run_blocking

__all__ = ["ENCODED_VIDEOS", "FramePrefetch", "VLLMGrounder", "answer_regex", "encode_frames"]

if TYPE_CHECKING:
    from grounding_agent.grounders.openai_http import Completion, OpenAIHTTP


ENCODED_VIDEOS = 8  # videos whose frames' data URLs are kept (repeated queries skip re-encoding)


def answer_regex(prompt: str, top_k: int, duration_s: float, think_chars: int = 1500) -> str:
    """The regex an answer must match (structured outputs): what `parsing.format_moment` writes.

    Times get at most as many integer digits as the duration (a 30 s video allows 0.00 - 99.99; the
    parser clamps the rest), so a forced answer cannot wander to hours. The reasoning is capped at
    `think_chars` characters so the answer tag still fits in the token budget.
    """
    digits = len(str(int(duration_s)))
    time = rf"[0-9]{{1,{digits}}}\.[0-9]{{2}}"
    span = rf"{time} - {time} seconds"
    if prompt == "reasoning":
        return rf"<think>[^<]{{0,{think_chars}}}</think><answer>{span}</answer>"
    if top_k > 1:
        line = rf"{span} \((0\.[0-9]{{2}}|1\.00)\)"
        return rf"{line}(\n{line}){{0,{top_k - 1}}}"
    return span


class VLLMGrounder(BaseGrounder):
    """Ground through a running vLLM server.

    Args:
        base_url: the server's OpenAI API root, e.g. "http://127.0.0.1:8000/v1".
        model: served model name: the base model or a LoRA adapter's name; None -> the first served.
        prompt: "grounding" or "reasoning".
        fps, max_frames, max_pixels: sampling when `ground` gets no frames (keep max_frames within
            the server's `--limit-mm-per-prompt` image limit).
        max_tokens: generation budget.
        num_samples: 1 = greedy; n > 1 = n sampled answers (one request, `n=`), scored by agreement.
        temperature: for sampling.
        structured: force the answer format with a regex (structured outputs).
        image_format: "jpeg" (small) or "png" (lossless: the server sees exactly our pixels).
        timeout_s: total seconds per request, retries included (a wall-clock deadline: a server that
            trickles its reply byte by byte is cut off too).
        max_retries: the client's retries with exponential backoff on connection errors, 408/409/429, 5xx.
        concurrency: requests in flight at once in the async API.
        fallback: when no answer parses, return the whole video with score 0.
        api_key: only if the server was started with --api-key.
    """

    needs_pixels = True

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        prompt: str = "grounding",
        fps: float = SERVED_SAMPLING.fps,
        max_pixels: int | None = SERVED_SAMPLING.max_pixels,
        max_frames: int = SERVED_SAMPLING.max_frames,
        max_tokens: int | None = None,
        num_samples: int = 1,
        temperature: float = 0.7,
        structured: bool = False,
        image_format: Literal["jpeg", "png"] = "jpeg",
        timeout_s: float = SERVER.request_timeout_s,
        max_retries: int = 2,
        concurrency: int = 4,
        fallback: bool = True,
        api_key: str = "EMPTY",
    ):
        if num_samples < 1 or concurrency < 1:
            raise ConfigError("num_samples and concurrency must be >= 1")
        if not isinstance(timeout_s, (int, float)) or not math.isfinite(timeout_s) or timeout_s <= 0:
            raise ConfigError(f"timeout_s must be a number of seconds > 0, got {timeout_s!r}")
        check_server_url(base_url)
        self.timeout_s = float(timeout_s)
        self.base_url = base_url.rstrip("/")
        self.prompt, self.fps, self.max_frames, self.max_pixels = prompt, fps, max_frames, max_pixels
        self.max_tokens = max_tokens or TOKENS.for_prompt(prompt)
        self.num_samples, self.temperature = num_samples, temperature
        self.structured, self.image_format, self.fallback = structured, image_format, fallback
        self.concurrency = concurrency
        # A character is at least one token: half the budget for reasoning leaves room for the answer.
        self.think_chars = max(16, self.max_tokens // 2)
        self._client_kwargs = {
            "where": f"vLLM server at {self.base_url}",
            "api_key": api_key,
            "timeout_s": self.timeout_s,
            "max_retries": max_retries,
        }
        self._async: dict[int, tuple[OpenAIHTTP, asyncio.Semaphore]] = {}
        # Frames' identity -> {frame position: data URL}: repeated queries on one video skip re-encoding.
        self._encoded: BoundedCache[tuple, dict[int, str]] = BoundedCache(maxsize=ENCODED_VIDEOS)
        start_tls_context()  # loads while the first client imports its HTTP library
        self.model = model or self.served_models()[0]
        self.name = f"vllm:{self.model}"

    @property
    def served_model(self) -> str:
        """The name the server answers to (base model or LoRA): also what LLM planners / verifiers ask."""
        return self.model

    @property
    def text_model(self) -> str:
        """The served model writes `describe`'s answers."""
        return self.model

    # --- server -----------------------------------------------------------------------------------

    def served_models(self) -> list[str]:
        """Names the server answers to (base model and LoRA adapters).

        Raises:
            ServerError: the server is down or answered with an error.
        """
        names = [m["id"] for m in self.model_cards()]
        if not names:
            raise ServerError(f"vLLM server at {self.base_url} serves no model")
        return names

    def model_cards(self) -> list[dict[str, Any]]:
        """The server's `/models` entries: `id`, and from vLLM `root` (the weights' path) and `parent`.

        Raises:
            ServerError: the server is down or answered with an error.
        """
        return self._blocking(lambda client: client.models())

    # --- grounding --------------------------------------------------------------------------------

    def _prepare(
        self, video: Video, query: str, top_k: int, frames: Frames | None, timings: dict[str, float]
    ) -> tuple[GroundingRequest, dict[str, Any]]:
        frames = self.frames_for(video, frames, timings)
        with timed(timings, "preprocess"):
            request = build_request(
                frames, query, family=None, mode="images", prompt=self.prompt, top_k=top_k
            )
            cache = encode_frames(frames, self.image_format, self._encoded_cache(frames))
            messages = openai_messages(request, self.image_format, cache)
        return request, self._body(messages, top_k, video.duration_s)

    def _encoded_cache(self, frames: Frames) -> dict[int, str]:
        """Data URLs already made for these frames (same file, frames and size); LRU of `ENCODED_VIDEOS` videos."""
        try:  # an edited file must not reuse stale images
            stat = os.stat(frames.video.path)
            version = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            version = (id(frames), 0)
        key = (
            str(frames.video.path),
            version,
            frames.indices.tobytes(),
            frames.pixels.shape,
            self.image_format,
        )
        cache = self._encoded.get(key)  # a hit is now the most recently used
        if cache is None:
            cache = {}
            self._encoded.set(key, cache)
        return cache

    def _body(self, messages: list[dict[str, Any]], top_k: int, duration_s: float) -> dict[str, Any]:
        """The chat-completions request."""
        sampled = self.num_samples > 1
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature if sampled else 0.0,
            "n": self.num_samples,
            "logprobs": not sampled,
        }
        if self.structured:
            body["structured_outputs"] = {
                "regex": answer_regex(self.prompt, top_k, duration_s, self.think_chars)
            }
        return body

    def _finish(
        self,
        video: Video,
        request: GroundingRequest,
        response: Completion,
        top_k: int,
        timings: dict[str, float],
    ) -> Grounding:
        info: dict[str, Any] = {
            "backend": "vllm",
            "server": self.base_url,
            "model": self.model,
            "structured": self.structured,
        }
        if response.usage is not None:
            info["usage"] = response.usage
        return grounding_from_answers(
            [choice.text for choice in response.choices],
            [choice.confidence for choice in response.choices],
            duration_s=video.duration_s,
            request=request,
            top_k=top_k,
            num_samples=self.num_samples,
            timings_s=timings,
            info=info,
            fallback=self.fallback,
        )

    def ground(self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None) -> Grounding:
        """Ground one query (blocking).

        Raises:
            ServerError: the server is down, timed out after retries, or rejected the request.
        """
        video = check_request(video, top_k, query)  # a path is opened here
        return self._ground(video, query, top_k, frames, {})

    def ground_prefetched(
        self, video: Video, query: str, prefetch: FramePrefetch, *, top_k: int = 1
    ) -> Grounding:
        """`ground` on the frames `prefetch` decoded and encoded in the background (the same frames and bytes
        `ground` would make). Its seconds count as "decode" and "preprocess", as if spent here.

        Raises:
            ServerError: as `ground`. VideoError subclasses: the worker could not decode the video (the
                same error `ground` raises, re-raised in this thread).
        """
        video = check_request(video, top_k, query)
        prepared = prefetch.result()
        if prepared.image_format == self.image_format:
            self._encoded_cache(prepared.frames).update(prepared.urls)
        return self._ground(video, query, top_k, prepared.frames, dict(prepared.timings_s))

    def _ground(
        self, video: Video, query: str, top_k: int, frames: Frames | None, timings: dict[str, float]
    ) -> Grounding:
        request, body = self._prepare(video, query, top_k, frames, timings)
        with timed(timings, "model"):
            response = self.chat_completion(**body)
        return self._finish(video, request, response, top_k, timings)

    async def aground(
        self, video: Video, query: str, *, top_k: int = 1, frames: Frames | None = None
    ) -> Grounding:
        """Ground one query without blocking the event loop; at most `concurrency` requests in flight."""
        video = check_request(video, top_k, query)  # a path is opened here
        client, semaphore = self._async_state()
        timings: dict[str, float] = {}
        # Decoding and base64-encoding frames is CPU work: keep it off the event loop.
        request, body = await asyncio.to_thread(self._prepare, video, query, top_k, frames, timings)
        async with semaphore:
            with timed(timings, "model"):
                response = await self._acall(client, lambda c: c.chat(body))
        return self._finish(video, request, response, top_k, timings)

    async def aground_many(
        self, items: list[tuple[Video, str]], *, top_k: int = 1, frames: list[Frames | None] | None = None
    ) -> list[Grounding]:
        """Ground many (video, query) pairs concurrently (bounded by `concurrency`); results in order."""
        frames = frames or [None] * len(items)
        return await asyncio.gather(
            *(self.aground(v, q, top_k=top_k, frames=f) for (v, q), f in zip(items, frames, strict=True))
        )

    def ground_many(
        self, items: list[tuple[Video, str]], *, top_k: int = 1, frames: list[Frames | None] | None = None
    ) -> list[Grounding]:
        """Blocking wrapper of `aground_many` (not callable from inside a running event loop)."""

        async def run() -> list[Grounding]:
            try:
                return await self.aground_many(items, top_k=top_k, frames=frames)
            finally:
                await self.aclose()

        return asyncio.run(run())

    def chat_completion(self, **body: Any) -> Completion:
        """POST /chat/completions with `body` (blocking) within the total deadline, the reply checked to hold
        a message: for other callers of the served model (e.g. moment descriptions).

        Raises:
            ServerError: unreachable, timed out, HTTP error, or a reply that is no chat completion.
        """
        return self._blocking(lambda client: client.chat(body))

    def describe(
        self,
        frames: Frames | None,
        request: DescribeRequest,
        moments: Sequence[Moment],
        *,
        max_tokens: int | None = None,
        max_frames: int = DESCRIBE_MAX_FRAMES,
    ) -> Description:
        """The served VLM answers `request` over timestamped frames (greedy, `max_tokens`, default 96), within
        this grounder's deadline, retries and reply checks.

        Raises:
            ServerError: as `chat_completion`.
        """
        if frames is None:
            raise ConfigError(f"{self.name} describes frames: pass the frames of the window")
        system, user, prompt = request.render()
        shown = spread(frames, max_frames)
        content = describe_content(
            shown, user, lambda i: {"type": "image_url", "image_url": {"url": encode_image(shown.pixels[i])}}
        )
        response = self.chat_completion(
            model=self.model,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": content}],
            max_tokens=max_tokens or 96,
            temperature=0.0,
        )
        return Description(response.choices[0].text.strip(), f"vlm:{self.model}", prompt)

    async def _acall(self, client: OpenAIHTTP, call: Any) -> Any:
        """Await `call(client)` within the total deadline `timeout_s` (retries included).

        The HTTP client's own timeout is per read (a reply trickled byte by byte never trips it): the
        deadline here is wall-clock, and cancelling the request closes its connection.
        """
        try:
            return await asyncio.wait_for(call(client), self.timeout_s)
        except TimeoutError:
            raise deadline_error(f"vLLM server at {self.base_url}", self.timeout_s) from None

    def _blocking(self, call: Any) -> Any:
        """`_acall` from synchronous code, on a short-lived async client (its connection dies with it)."""

        async def once() -> Any:
            client = self._new_client()
            try:
                return await self._acall(client, call)
            finally:
                await client.aclose()

        return run_blocking(once())

    async def aclose(self) -> None:
        """Close the running loop's async client (its connections belong to that loop)."""
        state = self._async.pop(id(asyncio.get_running_loop()), None)
        if state is not None:
            await state[0].aclose()

    def _new_client(self) -> OpenAIHTTP:
        from grounding_agent.grounders.openai_http import (
            OpenAIHTTP,  # lazy (~0.2 s): see the module docstring
        )

        # One TLS context per process: loading the CA bundle anew for every client costs ~25 ms each.
        return OpenAIHTTP(self.base_url, **self._client_kwargs, verify=tls_context())

    def _async_state(self) -> tuple[OpenAIHTTP, asyncio.Semaphore]:
        # An async client and a semaphore belong to one event loop: keep one pair per loop.
        loop_id = id(asyncio.get_running_loop())
        if loop_id not in self._async:
            client = self._new_client()
            self._async = {loop_id: (client, asyncio.Semaphore(self.concurrency))}
        return self._async[loop_id]
