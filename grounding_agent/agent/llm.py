"""The agent's one LLM chat client: a LangChain chat model on an OpenAI-compatible server, and how to call it.

The planner, the verifier and the explanation writer all talk to the served model through `invoke_chat`,
so transport failures map to `ServerError` in one place (`errors.server_error_from_openai`).
"""

from __future__ import annotations

from typing import Any

from grounding_agent.defaults import SERVER, TOKENS
from grounding_agent.errors import ServerError, server_error_from_openai
from grounding_agent.utils.deadline import call_with_deadline


def invoke_chat(model: Any, messages: list[Any], *, what: str = "planner") -> Any:
    """Run a LangChain chat model; transport failures become `ServerError` (one line, how to fix, status_code).

    An answer cut at max_tokens under structured output comes back as an ordinary (malformed) message for
    the caller to validate and fall back from, not as an error.
    """
    import openai  # the client LangChain-OpenAI uses; imported lazily

    timeout_s = _request_timeout_s(model)
    try:
        # The client's timeout is per read: a reply trickled byte by byte needs a wall-clock deadline.
        return call_with_deadline(lambda: model.invoke(messages), timeout_s, what=f"the {what} LLM")
    except openai.LengthFinishReasonError as exc:
        from langchain_core.messages import AIMessage

        choices = exc.completion.choices
        text = (choices[0].message.content or "") if choices else ""
        return AIMessage(content=text, response_metadata={"finish_reason": "length"})
    except openai.OpenAIError as exc:
        raise server_error_from_openai(exc, f"the {what} LLM") from None
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        # A 200 reply that is no chat completion (HTML, cut JSON, `choices: null`, `message: null`): the
        # client and LangChain fail on it with these. A malformed *answer* (OutputParserException) is
        # the caller's to validate and fall back from.
        from langchain_core.exceptions import OutputParserException

        if isinstance(exc, OutputParserException):
            raise
        raise server_error_from_openai(exc, f"the {what} LLM") from None


def _request_timeout_s(model: Any) -> float:
    """The chat model's `timeout` (through a `.bind(...)` wrapper too), else the default request timeout."""
    for obj in (model, getattr(model, "bound", None)):
        value = getattr(obj, "request_timeout", None)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
    return SERVER.request_timeout_s


def ask_json(
    model: Any,
    messages: list[Any],
    schema: dict[str, Any] | None,
    *,
    name: str,
    what: str,
    calls: dict[str, int] | None = None,
) -> tuple[str, list[str]]:
    """The model's raw text answer, decoding constrained to `schema` when given (vLLM honours
    `response_format={"type": "json_schema"}`); a server refusing the schema (HTTP 400) is asked again
    without it, and a note says so. The answer is the caller's to validate.

    Args:
        name: the schema's name in the request; what: who asks, for messages ("planner");
        calls: gains `{what}_llm` per call made (counted even when it fails).
    """
    calls = {} if calls is None else calls
    key = f"{what.replace(' ', '_')}_llm"

    def ask(chat: Any) -> str:
        calls[key] = calls.get(key, 0) + 1
        return message_text(invoke_chat(chat, messages, what=what))

    if schema is None:
        return ask(model), []
    response_format = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    try:
        return ask(model.bind(response_format=response_format)), []
    except ServerError as exc:
        if exc.status_code != 400:
            raise
        return ask(model), [f"server refused structured output ({short(str(exc))}); asked without it"]


def message_text(msg: Any) -> str:
    """The text of a chat message (joins content blocks)."""
    content = msg.content
    if isinstance(content, list):
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


def openai_base_url(server: str) -> str:
    """'http://host:8000' or 'http://host:8000/v1' -> 'http://host:8000/v1'."""
    server = server.rstrip("/")
    return server if server.endswith("/v1") else server + "/v1"


def chat_model(
    server: str,
    model: str,
    *,
    api_key: str = "EMPTY",
    max_tokens: int = TOKENS.chat,
    timeout_s: float = SERVER.request_timeout_s,
):
    """A `ChatOpenAI` pointed at a vLLM (or any OpenAI-compatible) server, deterministic decoding.

    Raises:
        MissingDependencyError: langchain-openai is not installed (the `agent` extra).
    """
    from grounding_agent.utils.extras import LLM_CHAT, require_spec

    require_spec(LLM_CHAT, "an LLM planner, verifier or explanation writer")
    from grounding_agent.grounders.serving import check_server_url

    check_server_url(server)
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(
        base_url=openai_base_url(server),
        model=model,
        api_key=api_key,
        temperature=0.0,
        max_tokens=max_tokens,
        timeout=timeout_s,
        max_retries=1,
    )


def short(text: str, limit: int = 160) -> str:
    """One line of at most `limit` characters (for notes and messages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
