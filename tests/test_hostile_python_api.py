"""The Python API with bad arguments: only `GroundingAgentError` subclasses come out (never a TypeError,
ValueError, KeyError … from deep inside), and calls that used to return silently wrong results either
refuse or return the right answer.

(Datasets/metrics calls are covered by the eval tests; `sample_frames` by the video tests.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from grounding_agent.errors import ConfigError, GroundingAgentError
from grounding_agent.grounders.baselines import BlindPriorGrounder, RandomGrounder, UniformGrounder
from grounding_agent.grounders.parsing import format_moment, parse_answer, parse_moments, to_seconds
from grounding_agent.highlights.windows import find_windows
from grounding_agent.io import check_model_source, check_output_path, write_json_atomic
from grounding_agent.types import Moment, Video
from grounding_agent.utils.temporal import nms, tiou, tiou_matrix

NAN, INF = float("nan"), float("inf")
VIDEO_6S = Video(Path("six_seconds.mp4"), 6.0, 30.0, 180, 64, 64)


def _vllm(*args: Any, **kwargs: Any) -> Any:
    from grounding_agent.grounders.vllm import VLLMGrounder

    return VLLMGrounder(*args, **kwargs)


def _server(**kwargs: Any) -> Any:
    from grounding_agent.grounders.serving import VLLMServer

    return VLLMServer(**kwargs)


def _load(model: str, **kwargs: Any) -> Any:
    from grounding_agent.grounders.hf import load_model

    return load_model(model, **kwargs)


# name -> a call with bad arguments that must raise a GroundingAgentError.
BAD_CALLS: dict[str, Callable[[], Any]] = {
    "parse_answer(duration 0)": lambda: parse_answer("1 - 2", 0),
    "parse_answer(duration nan)": lambda: parse_answer("1 - 2", NAN),
    "parse_answer(duration inf)": lambda: parse_answer("1 - 2", INF),
    "parse_answer(duration '5')": lambda: parse_answer("1 - 2", "5"),
    "parse_moments(duration None)": lambda: parse_moments("1 - 2", None),
    "uniform.ground(top_k=-1)": lambda: UniformGrounder().ground(VIDEO_6S, "q", top_k=-1),
    "uniform.ground(top_k=0)": lambda: UniformGrounder().ground(VIDEO_6S, "q", top_k=0),
    "uniform.ground(top_k=1.5)": lambda: UniformGrounder().ground(VIDEO_6S, "q", top_k=1.5),
    "uniform.ground(top_k=True)": lambda: UniformGrounder().ground(VIDEO_6S, "q", top_k=True),
    "random.ground(top_k=-2)": lambda: RandomGrounder().ground(VIDEO_6S, "q", top_k=-2),
    "UniformGrounder(num_windows=0)": lambda: UniformGrounder(num_windows=0),
    "UniformGrounder(delay_s=-1)": lambda: UniformGrounder(delay_s=-1),
    "BlindPriorGrounder([])": lambda: BlindPriorGrounder([]),
    "BlindPriorGrounder(nan row)": lambda: BlindPriorGrounder([[NAN, 0.5, 1.0]]),
    "BlindPriorGrounder(reversed row)": lambda: BlindPriorGrounder([[0.6, 0.2, 1.0]]),
    "BlindPriorGrounder(short row)": lambda: BlindPriorGrounder([[0.1]]),
    "BlindPriorGrounder(text row)": lambda: BlindPriorGrounder([["a", "b", "c"]]),
    "BlindPriorGrounder(row past the end only)": lambda: BlindPriorGrounder([[1.5, 2.0, 1.0]]),
    "find_windows([])": lambda: find_windows([], 6.0),
    "find_windows([nan])": lambda: find_windows([0.1, NAN], 6.0),
    "find_windows(2-D)": lambda: find_windows([[0.1, 0.2]], 6.0),
    "find_windows(text)": lambda: find_windows(["a", "b"], 6.0),
    "find_windows(duration 0)": lambda: find_windows([0.1, 0.9], 0.0),
    "find_windows(duration nan)": lambda: find_windows([0.1, 0.9], NAN),
    "VLLMGrounder(no URL)": lambda: _vllm("localhost:8000", "m"),
    "VLLMGrounder(timeout 0)": lambda: _vllm("http://127.0.0.1:9/v1", "m", timeout_s=0),
    "VLLMGrounder(timeout nan)": lambda: _vllm("http://127.0.0.1:9/v1", "m", timeout_s=NAN),
    "VLLMGrounder(concurrency 0)": lambda: _vllm("http://127.0.0.1:9/v1", "m", concurrency=0),
    "VLLMGrounder(server down)": lambda: _vllm("http://127.0.0.1:9/v1", None, max_retries=0, timeout_s=2),
    "VLLMServer(missing model)": lambda: _server(model="./no/such/model"),
    "VLLMServer(port 70000)": lambda: _server(model="Qwen/Qwen2.5-VL-7B-Instruct", port=70000),
    "VLLMServer(port -1)": lambda: _server(model="Qwen/Qwen2.5-VL-7B-Instruct", port=-1),
    "VLLMServer(host unresolvable)": lambda: _server(
        model="Qwen/Qwen2.5-VL-7B-Instruct", host="no-such-host.invalid"
    ),
    "VLLMServer(max_model_len 0)": lambda: _server(model="Qwen/Qwen2.5-VL-7B-Instruct", max_model_len=0),
    "VLLMServer(lora not a folder)": lambda: _server(
        model="Qwen/Qwen2.5-VL-7B-Instruct", loras={"a": "/nope"}
    ),
    "load_model(missing folder)": lambda: _load("./no/such/model"),
    "load_model(a file)": lambda: _load(__file__),
    "check_model_source(NUL)": lambda: check_model_source("a\x00b"),
    "check_output_path(NUL)": lambda: check_output_path("out\x00.json"),
    "check_output_path(directory)": lambda: check_output_path("/"),
    "write_json_atomic(/dev/null)": lambda: write_json_atomic("/dev/null", {}),
    "write_json_atomic(a set)": lambda: write_json_atomic("/nonexistent-dir-for-tests/x.json", {1, 2}),
    "check_output_path(None)": lambda: check_output_path(None),
    "check_model_source(None)": lambda: check_model_source(None),
    "GROUNDERS['hf'](None)": lambda: _load(None),
    "UniformGrounder(num_windows='a')": lambda: UniformGrounder(num_windows="a"),
    "UniformGrounder(delay_s='a')": lambda: UniformGrounder(delay_s="a"),
    "RandomGrounder(seed='a')": lambda: RandomGrounder(seed="a"),
    "tiou(short)": lambda: tiou([1], [1, 2]),
    "tiou(text)": lambda: tiou("ab", "cd"),
    "tiou_matrix((2, 3))": lambda: tiou_matrix(np.zeros((2, 3)), np.zeros((2, 2))),
    "tiou_matrix(text)": lambda: tiou_matrix([["a", "b"]], [[0, 1]]),
    "nms(None)": lambda: nms(None),
    "nms(iou nan)": lambda: nms([Moment(0.0, 1.0, 1.0)], iou_threshold=NAN),
    "nms(max_keep -1)": lambda: nms([Moment(0.0, 1.0, 1.0)], max_keep=-1),
    "nms(tuples)": lambda: nms([(0.0, 1.0)]),
    "format_moment(None)": lambda: format_moment(None),
    "to_seconds('a')": lambda: to_seconds("a"),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_bad_arguments_raise_only_package_errors(name) -> None:
    with pytest.raises(Exception) as info:
        BAD_CALLS[name]()
    assert isinstance(info.value, GroundingAgentError), f"{name}: {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert message and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("text", [None, 5, b"1 - 2", "", "   ", "\x00\x00", "caf\udce9 1 - 2"])
def test_parse_answer_never_raises_on_any_text(text) -> None:
    parsed = parse_answer(text, 6.0)
    assert parsed.moments or parsed.failure is not None


def test_blind_prior_clips_windows_to_the_video() -> None:
    """A prior window past the end (0-2 of the duration) would return 0-12 s on a 6 s video."""
    moments = BlindPriorGrounder([[0.0, 2.0, 1.0], [-0.5, 0.5, 0.5]]).ground(VIDEO_6S, "q", top_k=2).moments
    assert [(m.start_s, m.end_s) for m in moments] == [(0.0, 6.0), (0.0, 3.0)]


def test_uniform_returns_exactly_top_k_windows_inside_the_video() -> None:
    moments = UniformGrounder(num_windows=5).ground(VIDEO_6S, "q", top_k=3).moments
    assert len(moments) == 3 and all(0.0 <= m.start_s < m.end_s <= 6.0 for m in moments)


def test_find_windows_on_a_real_curve_stays_inside_and_finite() -> None:
    windows = find_windows([0.1, 0.1, 0.9, 0.8, 0.1], 9.0)
    assert windows and all(0.0 <= w.start_s < w.end_s <= 9.0 and math.isfinite(w.score) for w in windows)
    assert windows[0].start_s == 4.0  # the high clips (2 s each) are the third and fourth


def test_config_errors_are_also_value_errors_for_callers_that_catch_those() -> None:
    with pytest.raises(ValueError):
        UniformGrounder().ground(VIDEO_6S, "q", top_k=0)
    assert issubclass(ConfigError, GroundingAgentError)
