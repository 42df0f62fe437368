"""Planners: the rule planner on a corpus of Charades-style queries, the plan schema, the LLM fallback."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from grounding_agent.agent.planner import (
    PLANNERS,
    LLMPlanner,
    RulePlanner,
    llm_output_schema,
    make_planner,
    plan_schema,
    validate_plan_dict,
)
from grounding_agent.cli import plan as plan_cli
from grounding_agent.defaults import SERVER
from grounding_agent.errors import ConfigError
from grounding_agent.types import Plan, Relation, Step
from tests.agent_doubles import scripted_chat

CORPUS = yaml.safe_load((Path(__file__).parent / "assets" / "planner_corpus.yaml").read_text())


def expected_plan(case: dict) -> dict:
    return {
        "query": case["q"],
        "steps": [{"id": f"s{i + 1}", "text": t} for i, t in enumerate(case["steps"])],
        "relations": [dict(zip(("kind", "a", "b"), r.split())) for r in case["rel"]],
        "target": case["target"],
        "planner": "rule",
    }


def test_corpus_is_big_enough():
    assert len(CORPUS["compositional"]) >= 40
    assert len({c["q"] for c in CORPUS["compositional"]}) == len(CORPUS["compositional"])


@pytest.mark.parametrize("case", CORPUS["compositional"], ids=lambda c: c["q"][:40])
def test_rule_planner_corpus(case):
    plan = RulePlanner().plan(case["q"])
    assert plan.to_dict() == expected_plan(case)
    jsonschema.validate(plan.to_dict(), plan_schema())


@pytest.mark.parametrize("query", CORPUS["simple"])
def test_simple_queries_pass_through(query):
    plan = RulePlanner().plan(query)
    assert plan.steps == (Step("s1", query.rstrip(".")),)
    assert plan.relations == () and plan.target == "s1"


def test_empty_query_is_a_config_error():
    with pytest.raises(ConfigError, match="empty query"):
        RulePlanner().plan("  . ")


def test_plan_json_round_trip_keeps_notes():
    plan = Plan(
        "q", (Step("s1", "sit"), Step("s2", "read")), (Relation("before", "s1", "s2"),), "s2", "llm", ("n",)
    )
    assert Plan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan
    assert validate_plan_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"query": "q", "steps": [], "relations": [], "target": "span"}, "steps"),
        ({"query": "q", "steps": [{"id": "s1", "text": "ab"}], "relations": [], "target": "s7"}, "target"),
        (
            {"query": "q", "steps": [{"id": "x", "text": "ab"}], "relations": [], "target": "span"},
            "steps/0/id",
        ),
        (
            {
                "query": "q",
                "steps": [{"id": "s1", "text": "ab"}],
                "target": "span",
                "relations": [{"kind": "after", "a": "s1", "b": "s1"}],
            },
            "relations/0/kind",
        ),
    ],
)
def test_schema_rejects_bad_plans(bad, where):
    with pytest.raises(ConfigError, match=where):
        validate_plan_dict(bad)


def test_plan_invariants_beyond_the_schema():
    # Schema-valid, but the relation names a step that does not exist.
    bad = {
        "query": "q",
        "steps": [{"id": "s1", "text": "ab"}],
        "relations": [{"kind": "before", "a": "s1", "b": "s2"}],
        "target": "span",
    }
    with pytest.raises(ConfigError, match="unknown or identical"):
        validate_plan_dict(bad)


def test_llm_output_schema_leaves_our_fields_out():
    schema = llm_output_schema()
    assert set(schema["required"]) == {"steps", "relations", "target"}
    assert "query" not in schema["properties"] and "query" in plan_schema()["properties"]


def test_llm_planner_accepts_a_valid_answer():
    answer = json.dumps(
        {
            "steps": [{"id": "s1", "text": "person opens the door"}, {"id": "s2", "text": "person walks in"}],
            "relations": [{"kind": "before", "a": "s1", "b": "s2"}],
            "target": "span",
        }
    )
    plan = LLMPlanner(scripted_chat(answer)).plan("person opens the door and walks in")
    assert plan.planner == "llm" and plan.notes == ()
    assert [s.text for s in plan.steps] == ["person opens the door", "person walks in"]
    assert plan.query == "person opens the door and walks in"


@pytest.mark.parametrize(
    "answer",
    [
        "The person opens",
        '{"steps": []',
        '["s1"]',
        '{"steps": [{"id": "s1", "text": "ab"}], "relations": [], "target": "s3"}',
    ],
)
def test_llm_planner_falls_back_on_invalid_answers(answer):
    query = "after sitting down, the man reads a book."
    plan = LLMPlanner(scripted_chat(answer)).plan(query)
    assert plan.planner == "rule"
    assert plan.to_dict() | {"notes": None} == RulePlanner().plan(query).to_dict() | {"notes": None}
    assert any("fell back to the rule planner" in n for n in plan.notes)
    jsonschema.validate(plan.to_dict(), plan_schema())


def test_make_planner_registry():
    assert set(PLANNERS) == {"rule", "llm"}
    assert isinstance(make_planner(), RulePlanner)
    with pytest.raises(ConfigError, match="--server"):
        make_planner("llm")
    with pytest.raises(ConfigError, match="unknown planner"):
        make_planner("oracle")


def run_plan_cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    plan_cli.add_arguments(parser)
    args = parser.parse_args(argv)
    assert plan_cli.run(args) == 0
    return args


def test_plan_cli_json(capsys):
    run_plan_cli("person opens the fridge, then drinks from a bottle.", "--json")
    out = json.loads(capsys.readouterr().out)
    jsonschema.validate(out, plan_schema())
    assert out["planner"] == "rule" and out["relations"] == [{"kind": "before", "a": "s1", "b": "s2"}]


def test_plan_cli_text(capsys):
    run_plan_cli("a person laughs while talking on the phone.")
    out = capsys.readouterr().out
    assert "s1 during s2" in out and "returns: s1" in out


class TruncatingChatModelForTests(GenericFakeChatModel):
    """Test double: the OpenAI client's parse refusing a structured answer cut at max_tokens."""

    def _generate(self, *args, **kwargs):
        import openai
        from openai.types.chat import ChatCompletion
        from openai.types.completion_usage import CompletionUsage

        completion = ChatCompletion.model_validate(
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "tiny",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "length",
                        "message": {"role": "assistant", "content": '{"steps": [{"id": "s1", "text": "ab'},
                    }
                ],
                "usage": {"completion_tokens": 8, "prompt_tokens": 8, "total_tokens": 16},
            }
        )
        assert isinstance(completion.usage, CompletionUsage)
        raise openai.LengthFinishReasonError(completion=completion)


def test_llm_planner_truncated_structured_answer_falls_back():
    plan = LLMPlanner(TruncatingChatModelForTests(messages=iter([]))).plan("person sits down then reads.")
    assert plan.planner == "rule" and len(plan.steps) == 2
    assert any('llm raw output: {"steps": [{"id": "s1", "text": "ab' in n for n in plan.notes)


@pytest.mark.parametrize("case", CORPUS["editing"], ids=lambda c: c["q"][:40])
def test_editing_commands_ground_the_moment_not_the_verb(case):
    plan = RulePlanner().plan(case["q"])
    assert plan.to_dict() | {"notes": None} == expected_plan(case) | {"notes": None}
    assert plan.query == case["q"]  # the instruction itself is kept for the editor
    assert plan.notes and plan.notes[0].startswith("editing command: grounding")


def test_more_sub_events_than_the_planner_handles_is_a_typed_error():
    query = "person stands up, then walks to the door, then opens it, then waves, then leaves."
    with pytest.raises(ConfigError, match="5 sub-events in a row; the planner handles at most 4"):
        RulePlanner().plan(query)
    four = RulePlanner().plan("person stands up, then walks to the door, then opens it, then leaves.")
    assert len(four.steps) == 4 and len(four.relations) == 3


@pytest.mark.parametrize(
    "query, message",
    [
        (None, "must be text"),
        (42, "must be text"),
        (b"person sits", "must be text"),
        ("caf\udce9 opens", "UTF-8"),
    ],
)
def test_a_query_that_is_not_text_is_a_typed_error(query, message):
    for planner in (RulePlanner(), LLMPlanner(scripted_chat())):
        with pytest.raises(ConfigError, match=message):
            planner.plan(query)


@pytest.mark.parametrize(
    "data", [{}, {"query": "q"}, {"query": "q", "steps": 5}, [], None, {"query": "q", "steps": [{}]}]
)
def test_plan_from_a_malformed_dict_is_a_typed_error(data):
    with pytest.raises(ConfigError, match="not a plan"):
        Plan.from_dict(data)


def http_error(status: int) -> Exception:
    """What the OpenAI client raises for an HTTP error status."""
    import httpx
    import openai

    response = httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions"))
    cls = openai.BadRequestError if status == 400 else openai.InternalServerError
    return cls(f"Error code: {status}", response=response, body=None)


def test_llm_planner_counts_its_calls_and_retries_a_server_that_refuses_the_schema():
    from grounding_agent.errors import ServerError

    class RefusingSchemaChatModelForTests(GenericFakeChatModel):
        """Test double: a server answering HTTP 400 to structured-output requests, text otherwise."""

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if "response_format" in kwargs:
                raise http_error(400)
            return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    answer = json.dumps({"steps": [{"id": "s1", "text": "person sits"}], "relations": [], "target": "s1"})
    calls: dict[str, int] = {}
    plan = LLMPlanner(RefusingSchemaChatModelForTests(messages=iter([AIMessage(content=answer)]))).plan(
        "person sits", calls=calls
    )
    assert plan.planner == "llm" and calls == {"planner_llm": 2}
    assert "server refused structured output" in plan.notes[0]

    class BrokenServerChatModelForTests(GenericFakeChatModel):
        """Test double: a server answering HTTP 500."""

        def _generate(self, *args, **kwargs):
            raise http_error(500)

    with pytest.raises(ServerError, match="the planner LLM answered HTTP 500") as info:
        LLMPlanner(BrokenServerChatModelForTests(messages=iter([]))).plan("person sits")
    assert info.value.status_code == 500


def test_the_llm_planners_deadline_is_the_timeout_given() -> None:
    """`--timeout` reaches the llm planner's chat model; without one, the default request timeout."""
    from grounding_agent.agent.llm import _request_timeout_s

    planner = make_planner("llm", server="http://127.0.0.1:9/v1", model="m", timeout_s=7.5)
    assert isinstance(planner, LLMPlanner) and _request_timeout_s(planner.chat_model) == 7.5
    default = make_planner("llm", server="http://127.0.0.1:9/v1", model="m")
    assert _request_timeout_s(default.chat_model) == SERVER.request_timeout_s
