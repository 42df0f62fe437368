"""One registry, one factory, one typed protocol: what every caller may read of a grounder is on it."""

from __future__ import annotations

import argparse
import asyncio

import pytest

import grounding_agent
from grounding_agent.cli.options import add_backend_options, build_grounder
from grounding_agent.conversation.describe import TEMPLATE_PREFIX, DescribeRequest, describer_for
from grounding_agent.errors import ConfigError
from grounding_agent.grounders import GROUNDERS, BaseGrounder, Grounder, make_grounder, registry
from grounding_agent.grounders.baselines import RandomGrounder, UniformGrounder
from grounding_agent.grounders.transcript import TranscriptGrounder
from grounding_agent.types import Moment

PROTOCOL_ATTRIBUTES = (
    "name", "needs_pixels", "fps", "max_frames", "max_pixels", "concurrency", "text_model", "served_model",
    "transcriber",
)  # fmt: skip


def test_one_factory_is_exported_everywhere() -> None:
    assert grounding_agent.make_grounder is make_grounder is registry.make_grounder
    assert set(GROUNDERS) == {"hf", "vllm", "prior", "uniform", "random"}


def test_make_grounder_builds_baselines_and_refuses_unknown_names() -> None:
    assert isinstance(make_grounder("uniform", num_windows=3), UniformGrounder)
    assert make_grounder("random", seed=2).seed == 2
    with pytest.raises(ConfigError, match="unknown grounder 'nope'"):
        make_grounder("nope")


@pytest.mark.parametrize("model", [None, ""])
def test_hf_needs_a_model_in_python_and_on_the_command_line_alike(model) -> None:
    with pytest.raises(ConfigError, match="--backend hf needs --model") as python:
        make_grounder("hf", model=model)
    parser = argparse.ArgumentParser()
    add_backend_options(parser)
    with pytest.raises(ConfigError) as cli:
        build_grounder(parser.parse_args(["--backend", "hf"]))
    assert str(cli.value) == str(python.value)


def test_the_cli_builds_through_the_registry(monkeypatch) -> None:
    seen = {}

    def factory(**options):
        seen.update(options)
        return UniformGrounder()

    monkeypatch.setitem(GROUNDERS, "uniform", factory)
    parser = argparse.ArgumentParser()
    add_backend_options(parser)
    grounder = build_grounder(parser.parse_args(["--backend", "uniform"]))
    assert isinstance(grounder, UniformGrounder) and seen == {"delay_s": 0.0}


def test_vllm_server_defaults_to_the_environment(monkeypatch) -> None:
    seen = {}

    class Recorder:
        def __init__(self, server, model, **options):
            seen.update(server=server, model=model, **options)

    monkeypatch.setenv("GA_VLLM_URL", "http://example.invalid:9/v1")
    monkeypatch.setattr("grounding_agent.grounders.vllm.VLLMGrounder", Recorder)
    make_grounder("vllm", fps=1.0)
    assert seen == {"server": "http://example.invalid:9/v1", "model": None, "fps": 1.0}


@pytest.mark.parametrize("grounder", [UniformGrounder(), RandomGrounder(seed=1), BaseGrounder()])
def test_every_grounder_has_the_protocol_and_a_templated_describe(grounder) -> None:
    assert isinstance(grounder, Grounder)
    for name in PROTOCOL_ATTRIBUTES:
        assert hasattr(grounder, name), name
    assert grounder.text_model is None and grounder.served_model is None and grounder.concurrency == 1
    request = DescribeRequest("what happens?", 30.0, (1.0, 2.0))
    description = grounder.describe(None, request, [Moment(1.0, 2.0, 0.5)])
    assert description.source == "template" and description.text.startswith(TEMPLATE_PREFIX)
    describer = describer_for(grounder)
    assert not describer.needs_pixels and describer.name == f"template:{grounder.name}"
    assert grounder.transcript("any.mp4") is None


class _VLMForTests(BaseGrounder):
    """A grounder with a text model: `describe` says what it was shown."""

    name, text_model, served_model, concurrency, fps, max_frames = "vlm", "m", "served-m", 4, 2.0, 16

    def describe(self, frames, request, moments, *, max_tokens=None, max_frames=8):
        from grounding_agent.grounders.describe import Description

        return Description(f"{request.question} {max_tokens} {max_frames}", f"vlm:{self.text_model}")


def test_transcript_grounder_is_typed_as_its_visual_grounder() -> None:
    inner = _VLMForTests()
    wrapped = TranscriptGrounder(inner, transcriber=object())
    assert (wrapped.fps, wrapped.max_frames, wrapped.needs_pixels) == (2.0, 16, True)
    assert (wrapped.text_model, wrapped.served_model, wrapped.concurrency) == ("m", "served-m", 4)
    wrapped.concurrency = 9  # eval raises the in-flight cap: it is the visual grounder's
    assert inner.concurrency == 9 and wrapped.concurrency == 9
    describer = describer_for(wrapped)
    assert describer.needs_pixels and describer.name == "vlm:m"
    assert describer.describe(None, DescribeRequest("q?", 10.0), []).text == "q? None 8"
    alone = TranscriptGrounder(None, transcriber=object())
    assert (alone.needs_pixels, alone.text_model, alone.served_model, alone.concurrency) == (
        False,
        None,
        None,
        1,
    )
    assert describer_for(alone).name == "template:speech"


def test_base_grounder_aground_runs_ground() -> None:
    class Echo(BaseGrounder):
        def ground(self, video, query, *, top_k=1, frames=None):
            return query

    assert asyncio.run(Echo().aground("v.mp4", "q")) == "q"
