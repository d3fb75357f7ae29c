"""What one judge call asks the endpoint: the chat-completions body for a model.

One place builds it, so a live call (judge/runner.py) and a line of a Batch API file (judge/batch.py) ask the
same thing of the same model, and their answers share one cache.

Reasoning models (o1, o3, o4-mini, GPT-5) refuse `max_tokens` and any `temperature` with HTTP 400, and spend
completion tokens on reasoning before the answer: they get `max_completion_tokens` with a budget of their own
(`[judge] reasoning_max_tokens`) and no sampling parameter. REASONING_MODELS decides by the model's name;
`[judge] reasoning` and `token_parameter` override it for a model the table does not know.
"""

from __future__ import annotations

import re

from prefstudio.config import JudgeConfig
from prefstudio.judge.prompts import JudgePrompt
from prefstudio.judge.verdict import RESPONSE_FORMAT

# Name prefixes of reasoning models, matched on the name after any "provider/" ("openai/o3-mini").
REASONING_MODELS = ("o1", "o3", "o4", "gpt-5")
TOP_LOGPROBS = 5
# Parts of a request an endpoint may not support, and the words its 400 names them by: a run that hears one
# asks without it from then on (judge/runner.py), and reads the answers the older way.
OPTIONAL_PARTS = {"response_format": ("response_format", "json_schema"), "logprobs": ("logprobs",)}


def is_reasoning_model(settings: JudgeConfig) -> bool:
    if settings.reasoning != "auto":
        return settings.reasoning
    name = settings.model.rsplit("/", 1)[-1].lower()
    return any(re.match(rf"{re.escape(prefix)}(?:$|[-.:@_])", name) for prefix in REASONING_MODELS)


def chat_request(settings: JudgeConfig, messages: list[dict], *, prompt: JudgePrompt | None = None,
                 without: frozenset[str] | set[str] = frozenset()) -> dict:
    """The keyword arguments of `chat.completions.create` (and the body of a batch line) for `settings.model`.

    `prompt`: what it asks for beyond text (a JSON-schema answer, logprobs; prompts.py); `without`: the
    OPTIONAL_PARTS this endpoint refused, left out.
    """
    reasoning = is_reasoning_model(settings)
    body: dict = {"model": settings.model, "messages": messages}
    if not reasoning:
        body["temperature"] = settings.temperature
    token_parameter = settings.token_parameter
    if token_parameter == "auto":
        token_parameter = "max_completion_tokens" if reasoning else "max_tokens"
    body[token_parameter] = settings.reasoning_max_tokens if reasoning else settings.max_tokens
    if settings.reasoning_effort is not None:
        body["reasoning_effort"] = settings.reasoning_effort
    if prompt is not None and prompt.structured == "json_schema" and "response_format" not in without:
        body["response_format"] = RESPONSE_FORMAT
    wants_logprobs = settings.logprobs or (prompt is not None and prompt.logprobs)
    if wants_logprobs and not reasoning and "logprobs" not in without:  # reasoning models give none
        body["logprobs"], body["top_logprobs"] = True, TOP_LOGPROBS
    return body


def refused_part(server_text: str, body: dict) -> str | None:
    """The optional part of `body` that a 400 with this text refuses (OPTIONAL_PARTS), or None."""
    text = server_text.lower()
    return next((part for part, words in OPTIONAL_PARTS.items()
                 if part in body and any(word in text for word in words)), None)
