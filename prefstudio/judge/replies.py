"""What an OpenAI-compatible endpoint sends back: an answer or not, and how long it asks us to wait.

A 200 reply is not always an answer: empty or null content, `{}`, a proxy's
HTML page. Those are transient errors to retry (prefstudio.judge.runner), never
answers to keep: cached, they would stand as parse errors for good.
"""

from __future__ import annotations

import math
import random
import re
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime


class NoAnswer(Exception):
    """A reply that is not an answer: empty or null content, `{}`, an HTML page. Transient: retried, never kept."""


def answer_text(reply) -> str:
    """The judge's text in a chat completion, or NoAnswer saying what came instead."""
    if isinstance(reply, str):  # the client hands back a body that is not JSON as text
        body = reply.strip()
        raise NoAnswer("an HTML page, not an answer" if body.startswith("<") else
                       "an empty body" if not body else "a body that is not JSON")
    choices = getattr(reply, "choices", None)
    if not isinstance(choices, list):
        raise NoAnswer("a reply with no choices (e.g. `{}`)")
    if not choices:
        raise NoAnswer("a reply with an empty choices list")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str):
        raise NoAnswer("a reply with null content" if content is None else "a reply whose content is not text")
    if not content.strip():
        if getattr(choices[0], "finish_reason", None) == "length":  # a reasoning model spent it all thinking
            raise NoAnswer("an empty answer cut at the token budget (raise [judge] max_tokens or "
                           "reasoning_max_tokens)")
        raise NoAnswer("an empty answer")
    return content


def answer_logprobs(reply) -> list[tuple[str, float, list[tuple[str, float]]]] | None:
    """The answer's tokens as (text, logprob, top alternatives as (text, logprob)), where the reply has them."""
    try:
        content = reply.choices[0].logprobs.content
        return [(item.token, float(item.logprob), [(top.token, float(top.logprob)) for top in item.top_logprobs or []])
                for item in content]
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


_SECRET = re.compile(r"\b(sk|key|token)-[A-Za-z0-9_\-*]{6,}", re.IGNORECASE)
SAID_CHARS = 300


def server_said(exc: Exception, api_key: str | None = None) -> str:
    """The endpoint's own error text, in one line and at most SAID_CHARS long, with no key in it ("" if none).

    What the server says is the reason a request was refused ("Unsupported parameter: 'max_tokens' ..."); a
    key it echoes (a proxy's "invalid key sk-...") is cut out, so the line can be shown and stored.
    """
    body = getattr(exc, "body", None)
    said = body.get("message") if isinstance(body, dict) else body if isinstance(body, str) else None
    if not isinstance(said, str) or not said.strip():
        response = getattr(exc, "response", None)
        try:
            said = response.text if response is not None else ""
        except Exception:  # a streamed body not read: nothing to show
            said = ""
    if api_key:
        said = said.replace(api_key, "[key]")
    said = _SECRET.sub("[key]", " ".join(said.split()))
    return said if len(said) <= SAID_CHARS else said[: SAID_CHARS - 1] + "…"


def token_count(usage, name: str) -> int:
    value = getattr(usage, name, None)
    return value if isinstance(value, int) and value >= 0 else 0


def retry_after(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (Retry-After: seconds or an HTTP date, or retry-after-ms), or None."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    try:
        if headers.get("retry-after-ms") is not None:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (TypeError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError, IndexError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def backoff(attempt: int, exc: Exception, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter; a server's Retry-After is added by the run, up to its cap."""
    return random.uniform(0, min(cap, base * 2**attempt))
