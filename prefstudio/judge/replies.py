"""What an OpenAI-compatible endpoint sends back: an answer or not, and how long it asks us to wait.

A 200 reply is not always an answer: empty or null content, `{}`, a proxy's
HTML page. Those are transient errors to retry (prefstudio.judge.runner), never
answers to keep: cached, they would stand as parse errors for good.
"""

from __future__ import annotations

import math
import random
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
        raise NoAnswer("an empty answer")
    return content


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
