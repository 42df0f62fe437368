"""Reuse, within one session, what a Qwen-VL model computes from the frames alone.

Every question on a `Session` shows the model the same frames; only the text changes. Two steps depend
on the frames and the sampling only, never on the query: the image / video processor (resize, patchify:
`pixel_values*`, `*_grid_thw`) and the vision tower (`get_image_features` / `get_video_features`, the
visual embeddings, with Qwen3-VL's deepstack features). `install(model, processor)` routes both through
the cache that is *active* in the calling context (`with use(cache): ...`, set by `Session`); with no
active cache they run as before. The language model's KV cache of the prompt prefix the questions share
(system text + visual tokens; the question comes after them) is kept here too, kind "lm:prefix"
(`grounders.hf.generate`).

A hit needs inputs equal to a stored call's, compared by value (`torch.equal` / `np.array_equal`, plus
every keyword), and the same owner: the model or processor that computed it (by identity) with the same
PEFT adapters applied (`owner_key`), so a hit returns exactly what the call would compute (inference is
deterministic for equal inputs): greedy answers are unchanged. Weights edited in place mid-session (a
training step) are not seen: clear the cache after one. Entries are kept least-recently-used within
`max_bytes` (the kept inputs count too) and die with the session that owns the cache.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from grounding_agent.defaults import SESSION
from grounding_agent.utils.cache import BoundedCache

_ACTIVE: contextvars.ContextVar[VisionCache | None] = contextvars.ContextVar("ga_vision_cache", default=None)


@dataclass
class _Entry:
    kind: str
    owner: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    value: Any
    nbytes: int


class VisionCache:
    """LRU of (kind, inputs) -> output, bounded by bytes (a `BoundedCache`); counts hits and misses per kind.

    Inputs are compared by value, not hashed: the stored calls are scanned (`_inputs`, which never changes
    the recency order) and a hit is then read through the LRU, which makes it the most recently used.
    """

    def __init__(self, max_bytes: int = SESSION.vision_cache_bytes):
        self.max_bytes = max_bytes
        self._lru: BoundedCache[int, _Entry] = BoundedCache(
            maxsize=max_bytes, getsizeof=lambda entry: entry.nbytes, on_evict=self._forget
        )
        self._inputs: dict[int, _Entry] = {}  # the same entries, in insertion order, for the scan
        self._ids = iter(range(1 << 62))
        self._lock = threading.Lock()
        self.nbytes = 0
        self.hits: dict[str, int] = {}
        self.misses: dict[str, int] = {}

    def call(
        self,
        kind: str,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        owner: Any = None,
    ) -> Any:
        """`fn(*args, **kwargs)`, or the stored output of an earlier call of `kind` by the same `owner`
        (see `owner_key`) with equal inputs."""
        with self._lock:
            for key, entry in reversed(list(self._inputs.items())):
                if (
                    entry.kind == kind and _same(entry.owner, owner)
                    and _same(entry.args, args) and _same(entry.kwargs, kwargs)
                ):  # fmt: skip
                    self._lru.get(key)  # now the most recently used
                    self.hits[kind] = self.hits.get(kind, 0) + 1
                    return entry.value
            self.misses[kind] = self.misses.get(kind, 0) + 1
        # Non-array inputs are copied before the call: a processor may edit what it was given.
        kept_args, kept_kwargs = _keep(args), _keep(kwargs)
        value = fn(*args, **kwargs)
        nbytes = _nbytes(value) + _nbytes(kept_args) + _nbytes(kept_kwargs)
        with self._lock:
            if nbytes <= self.max_bytes:  # a larger one is computed, never kept
                key, entry = next(self._ids), _Entry(kind, owner, kept_args, kept_kwargs, value, nbytes)
                self._inputs[key] = entry
                self.nbytes += nbytes
                self._lru.set(key, entry)  # evicts the least recently used until it fits (`_forget`)
        return value

    def _forget(self, key: int, entry: _Entry) -> None:
        if self._inputs.pop(key, None) is not None:
            self.nbytes -= entry.nbytes

    def entries(self) -> list[_Entry]:
        """The stored calls (kind, owner, inputs, output, bytes), oldest first."""
        return list(self._inputs.values())

    def clear(self) -> None:
        self._lru.clear()

    def __len__(self) -> int:
        return len(self._inputs)


@contextmanager
def use(cache: VisionCache | None) -> Iterator[VisionCache | None]:
    """Make `cache` the active one in this context (threads started with `asyncio.to_thread` inherit it)."""
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def active() -> VisionCache | None:
    return _ACTIVE.get()


def owner_key(obj: Any) -> tuple[Any, ...]:
    """What besides the inputs decides an output: the object itself (weakly held, compared by identity)
    and the PEFT adapters applied to it right now (toggling one, e.g. `with model.disable_adapter():`,
    changes what the same inputs give)."""
    return weakref.ref(obj), adapter_state(obj)


def adapter_state(model: Any) -> tuple[Any, ...]:
    """(active adapter names, disabled, merged) of `model`'s PEFT layers; () when it has none."""
    if "peft" not in sys.modules or not hasattr(model, "modules"):  # no PEFT loaded: no adapter layers
        return ()
    from peft.tuners.tuners_utils import BaseTunerLayer

    for module in model.modules():
        if isinstance(module, BaseTunerLayer):  # PEFT toggles every layer of a model together
            return tuple(module.active_adapters), bool(module.disable_adapters), bool(module.merged)
    return ()


def install(model: Any, processor: Any) -> None:
    """Route `model`'s vision encoders and `processor`'s image / video processors through the active cache.

    Idempotent. The encoders are patched on the inner multimodal model (what `generate` and `forward`
    call); a PEFT wrapper is looked through.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(inner, "model", inner)
    for name in ("get_image_features", "get_video_features"):
        method = getattr(inner, name, None)
        if method is not None and not getattr(method, "_ga_cached", False):
            setattr(inner, name, _cached(f"vision:{name}", method, weakref.ref(inner)))
    for name in ("image_processor", "video_processor"):
        sub = getattr(processor, name, None)
        if sub is not None and not isinstance(sub, _CachedProcessor):
            setattr(processor, name, _CachedProcessor(name, sub))


def _cached(kind: str, fn: Callable[..., Any], owner: weakref.ref) -> Callable[..., Any]:
    @functools.wraps(fn)  # keeps the signature: `generate` inspects it to pick the encoder's arguments
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cache = _ACTIVE.get()
        if cache is None:
            return fn(*args, **kwargs)
        # `generate` reassigns fields of the output it gets (num_return_sequences > 1): hand out a copy.
        return copy.copy(cache.call(kind, fn, args, kwargs, owner=owner_key(owner())))

    wrapper._ga_cached = True  # type: ignore[attr-defined]
    return wrapper


class _CachedProcessor:
    """A sub-processor whose calls go through the active cache; everything else is the original's."""

    def __init__(self, kind: str, processor: Any):
        self.__dict__["_kind"], self.__dict__["_processor"] = f"processor:{kind}", processor

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        cache = _ACTIVE.get()
        if cache is None:
            return self._processor(*args, **kwargs)
        # The caller adds keys to the BatchFeature it gets (e.g. second_per_grid_ts): hand out a copy.
        owner = owner_key(self._processor)
        return copy.copy(cache.call(self._kind, self._processor, args, kwargs, owner=owner))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._processor, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._processor, name, value)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")


def _same(a: Any, b: Any) -> bool:
    """Equal by value: arrays and tensors element-wise (and same dtype / shape), containers recursively."""
    if a is b:
        return True
    if _is_tensor(a) or _is_tensor(b):
        import torch

        return (
            _is_tensor(a) and _is_tensor(b) and a.dtype == b.dtype and a.shape == b.shape
            and a.device == b.device and bool(torch.equal(a, b))
        )  # fmt: skip
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
            and a.shape == b.shape and bool(np.array_equal(a, b))
        )  # fmt: skip
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if type(a) is not type(b):
        return False
    try:
        return bool(a == b)
    except Exception:  # an object without a usable == (e.g. array-valued): never a hit
        return False


def _keep(x: Any) -> Any:
    """Arrays and tensors by reference (nobody edits them in place here), the rest deep-copied."""
    if _is_tensor(x) or isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(_keep(v) for v in x)
    if isinstance(x, dict):
        return {k: _keep(v) for k, v in x.items()}
    try:
        return copy.deepcopy(x)
    except Exception:
        return x


def _nbytes(x: Any, _seen: set[int] | None = None) -> int:
    seen = set() if _seen is None else _seen
    if id(x) in seen:
        return 0
    seen.add(id(x))
    if _is_tensor(x):
        return int(x.numel() * x.element_size())
    if isinstance(x, np.ndarray):
        return int(x.nbytes)
    if isinstance(getattr(x, "layers", None), list):  # a transformers KV cache: its layers' keys / values
        return sum(_nbytes(vars(layer), seen) for layer in x.layers)
    if isinstance(x, dict) or hasattr(x, "items"):
        try:
            return sum(_nbytes(v, seen) for v in x.values())
        except Exception:
            return 0
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(v, seen) for v in x)
    return 0
