"""A small OpenAI-compatible chat server on 127.0.0.1, for tests and bench/.

It answers /v1/chat/completions with whatever `answer(prompt, response_a,
response_b)` returns, and can be told to fail: a queue of status codes to
return first (429, 500, ...), with a Retry-After of its choosing, a queue of
200 replies that are no answer (empty or null content, `{}`, a proxy's HTML
page), a latency, garbage answers, or to hang once it has answered a given
number of calls (a dead API). It counts what it is asked per (prompt, A, B):
one key per pair and order, and keeps every request body it got (`bodies`).

Modes, as the real endpoints behave: `reasoning=True` refuses `max_tokens` and
`temperature` with the OpenAI API's own 400 (a reasoning model); `json_schema`
True answers a `response_format` JSON schema with a JSON verdict, False refuses
it with a 400 (a server without structured outputs), None ignores it; `logprobs`
(a function of (prompt, A, B) giving the winner letter's and the operator's
probabilities) returns `choices[0].logprobs` for the answer when asked.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

_SECTION = re.compile(r"<(conversation|response_a|response_b)>\n(.*?)\n</\1>", re.DOTALL)
_VERDICT = re.compile(r"([AB])(>{1,3}|=)([AB])")

# The OpenAI API's 400 bodies, word for word, for what a reasoning model or an endpoint without JSON schemas refuses.
REFUSALS = {
    "max_tokens": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                              "'max_completion_tokens' instead.", "type": "invalid_request_error",
                   "param": "max_tokens", "code": "unsupported_parameter"},
    "temperature": {"message": "Unsupported value: 'temperature' does not support 0 with this model. Only the "
                               "default (1) value is supported.", "type": "invalid_request_error",
                    "param": "temperature", "code": "unsupported_value"},
    "response_format": {"message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                                   "with this model.", "type": "invalid_request_error", "param": "response_format",
                        "code": None},
}


def default_answer(prompt: str, response_a: str, response_b: str) -> str:
    """Prefers the longer response, by a level that grows with the length ratio."""
    la, lb = len(response_a), len(response_b)
    if la == lb:
        return "They are equivalent.\nVerdict: A=B"
    ratio = max(la, lb) / max(1, min(la, lb))
    op = ">>>" if ratio > 3 else ">>" if ratio > 1.5 else ">"
    return f"One is more complete.\nVerdict: {'A' + op + 'B' if la > lb else 'B' + op + 'A'}"


# 200 replies that are not answers, as (content type, body): what a flaky server or a proxy sends.
def _completion(content) -> bytes:
    return json.dumps({"id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "stub",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                    "finish_reason": "stop"}]}).encode()


NO_ANSWERS: dict[str, tuple[str, bytes]] = {
    "empty content": ("application/json", _completion("")),
    "null content": ("application/json", _completion(None)),
    "blank content": ("application/json", _completion(" \n ")),
    "{} body": ("application/json", b"{}"),
    "no choices": ("application/json", b'{"choices": []}'),
    "HTML page": ("text/html", b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"),
    "garbage JSON": ("application/json", b"<<not json>>"),
    "empty body": ("text/plain", b""),
}


def _as_json(text: str) -> str:
    """An answer as a JSON-schema endpoint gives it: its first line the reason, its last verdict the verdict."""
    found = _VERDICT.findall(text)
    answer = {"reason": text.splitlines()[0] if text else ""}
    if found:
        answer["verdict"] = "".join(found[-1])
    return json.dumps(answer)


def _token(text: str, probability: float, top: dict[str, float] | None = None) -> dict:
    def logprob(p: float) -> float:
        return math.log(p) if p > 0 else -100.0

    top = top if top is not None else {text: probability}
    return {"token": text, "logprob": logprob(probability), "bytes": list(text.encode()),
            "top_logprobs": [{"token": t, "logprob": logprob(p), "bytes": list(t.encode())}
                             for t, p in top.items() if p > 0]}


def _token_logprobs(text: str, winners: dict[str, float], operators: dict[str, float]) -> list[dict]:
    """The answer as tokens: what comes before its last verdict, the winner letter, the operator, the rest; the
    letter's and the operator's alternatives from the test's probabilities, every other token certain."""
    found = list(_VERDICT.finditer(text))
    if not found:
        return [_token(text, 1.0)]
    match = found[-1]
    tokens = [_token(text[: match.start()], 1.0)] if match.start() else []
    letter, op = match.group(1), match.group(2)
    tokens += [_token(letter, winners.get(letter, 0.0), winners), _token(op, operators.get(op, 0.0), operators)]
    rest = text[match.start(3):]
    return tokens + [_token(rest, 1.0)]


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default 5 resets connections at concurrency 32


Probs = dict[str, float]


class StubOpenAI:
    def __init__(self, answer: Callable[[str, str, str], str] = default_answer, latency_s: float = 0.0, *,
                 reasoning: bool = False, json_schema: bool | None = None,
                 logprobs: Callable[[str, str, str], tuple[Probs, Probs]] | None = None):
        self.answer = answer
        self.latency_s = latency_s
        self.reasoning = reasoning
        self.json_schema = json_schema
        self.logprobs = logprobs  # (prompt, A, B) -> ({"A": p, "B": q}, {">": .., ">>": .., ">>>": .., "=": ..})
        self.bodies: list[dict] = []  # every request body, in the order received
        self.fail_with: list[int] = []  # status codes returned, in order, before answering again
        self.retry_after = "0"  # the Retry-After header sent with those
        self.no_answers: list[str] = []  # NO_ANSWERS names, 200 replies sent in order before answering again
        self.no_answer_for: set[str] = set()  # prompts whose calls always get an empty answer
        self.hang_after: int | None = None  # stop answering (hold the request) after this many answers
        self.answered: Counter = Counter()  # (prompt, A, B) -> times answered
        self.requests = 0
        self.tries: Counter = Counter()  # (prompt, A, B) -> requests received, failed ones included
        self.auth_headers: list[str] = []
        self._admitted = 0  # requests let through to be answered: hang_after counts these, so it is never overrun
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address
        return f"http://{host}:{port}/v1"

    @property
    def n_answered(self) -> int:
        return sum(self.answered.values())

    def __enter__(self) -> "StubOpenAI":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _respond(self, body: dict) -> tuple[int, dict, dict]:
        user = body["messages"][-1]["content"]
        parts = dict(_SECTION.findall(user))
        key = (parts.get("conversation", ""), parts.get("response_a", ""), parts.get("response_b", ""))
        with self._lock:
            self.requests += 1
            self.tries[key] += 1
            self.bodies.append(body)
            refused = self._refused(body)
            if refused:
                return 400, {"error": REFUSALS[refused]}, {}
            if self.fail_with:
                code = self.fail_with.pop(0)
                return code, {"error": {"message": f"stub failure {code}", "type": "stub"}}, {"retry-after": self.retry_after}
            if self.no_answers or key[0] in self.no_answer_for:
                return 200, NO_ANSWERS[self.no_answers.pop(0) if self.no_answers else "empty content"], {}
            # decided and counted at once: requests in flight together cannot all slip under the limit
            hang = self.hang_after is not None and self._admitted >= self.hang_after
            self._admitted += not hang
        if hang:
            self._release.wait()
            return 503, {"error": {"message": "gone"}}, {}
        if self.latency_s:
            time.sleep(self.latency_s)
        text = self.answer(*key)
        if self.json_schema and (body.get("response_format") or {}).get("type") == "json_schema":
            text = _as_json(text)
        with self._lock:
            self.answered[key] += 1
        tokens_in = sum(len(m["content"]) for m in body["messages"]) // 4
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        if body.get("logprobs") and self.logprobs:
            choice["logprobs"] = {"content": _token_logprobs(text, *self.logprobs(*key))}
        return 200, {
            "id": f"chatcmpl-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "stub"),
            "choices": [choice],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": 20, "total_tokens": tokens_in + 20},
        }, {}

    def _refused(self, body: dict) -> str | None:
        """The REFUSALS key of what this server does not take in `body`, or None."""
        if self.reasoning and "max_tokens" in body:
            return "max_tokens"
        if self.reasoning and "temperature" in body:
            return "temperature"
        if self.json_schema is False and "response_format" in body:
            return "response_format"
        return None

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs: 40 ms a call

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("content-length", 0))
                try:
                    body = json.loads(self.rfile.read(length))
                except (ValueError, ConnectionError):  # a client killed while sending: nothing to answer
                    self.close_connection = True
                    return
                stub.auth_headers.append(self.headers.get("authorization", ""))
                code, payload, headers = stub._respond(body)
                content_type, data = payload if isinstance(payload, tuple) else ("application/json",
                                                                                 json.dumps(payload).encode())
                self.send_response(code)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (its timeout): as a real server would, carry on

            def log_message(self, *args):
                pass

        return Handler


def main() -> None:
    """`python -m tests.openai_stub --latency 0.2`: serve until killed, printing the base URL first."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds each answer takes")
    args = parser.parse_args()
    with StubOpenAI(latency_s=args.latency) as stub:
        print(stub.base_url, flush=True)
        threading.Event().wait()


if __name__ == "__main__":
    main()
