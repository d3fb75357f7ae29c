"""Running the LLM judge over pairs: both orders, cached, resumable
(docs/methods.md, "The LLM judge").

Every call is keyed by a hash of (model, prompt identity, prompt, A, B). A
reply that is an answer (non-empty text) is on disk before anything else
happens to it (prefstudio.judge.journal), and its call keeps its concurrency
slot until then, so an interrupted run loses at most `concurrency` paid calls
and a rerun pays for nothing twice. A reply that is no answer (empty or null
content, `{}`, a proxy's HTML page) is a transient error: retried, never kept.
A pair's label is written once both of its calls are known. The event loop
never waits on the disk or on DuckDB: writer threads do.

Over 400 lines because the run's three parts (selection, the async calls with
retries, the writer threads) share one state object and one shutdown path.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import openai

from prefstudio.config import JudgeConfig, MarginConfig
from prefstudio.db import source_split_where, transaction
from prefstudio.errors import PrefstudioError
from prefstudio.judge.continuation import LABEL, RETRY_ERRORS, Continuation, Selection, find_continuation
from prefstudio.judge.journal import RunWriter, now_text, replay_journals
from prefstudio.judge.prompts import JudgePrompt
from prefstudio.judge.request import chat_request, is_reasoning_model, refused_part
from prefstudio.judge.replies import (NoAnswer, answer_logprobs, answer_text, backoff, retry_after, server_said,
                                      token_count)
from prefstudio.judge.verdict import Judgement, combine, expected_level, parse_verdict, verdict_distribution
from prefstudio.labels import signed_margin

EXPECTED_OUTPUT_TOKENS = 60  # one sentence and a verdict line, for the estimate
# A reasoning model's hidden reasoning is billed as output: a first guess at low effort, until calls of the model
# in the workspace have measured it (expected_output_tokens).
REASONING_OUTPUT_TOKENS = 1000
API_KEY_ENV = "OPENAI_API_KEY"


@dataclass(frozen=True)
class Advice:
    """What the judge's errors tell a person to change, in the words of where they change it.

    The errors are decided here, once; the command line names its flags (these defaults) and the app
    names its form's fields (tui/judge_screen.py), so neither tells the other's user to "give --base-url".
    """

    set_key: str = "export it"
    set_base_url: str = "give --base-url"
    other_model: str = "pick another with --model"
    check_endpoint: str = "check --model and --base-url"


COMMAND_LINE_ADVICE = Advice()


def call_key(model: str, prompt_identity: str, prompt: str, response_a: str, response_b: str) -> str:
    text = "\x1f".join((model, prompt_identity, prompt, response_a, response_b))
    return hashlib.sha256(text.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass
class CallResult:
    response: str
    tokens_in: int
    tokens_out: int
    cost_usd: float
    verdict_probs: dict[str, float] | None = None  # from the answer's logprobs, where the endpoint gave them


@dataclass
class PairTask:
    pair_id: int
    prompt: str
    chosen: str
    rejected: str
    key_ab: str  # chosen shown as A
    key_ba: str  # chosen shown as B
    results: dict[str, CallResult] = field(default_factory=dict)  # "A"/"B" (where chosen was shown) -> result


@dataclass
class RunPlan:
    tasks: list[PairTask]
    calls_needed: int
    calls_cached: int
    est_tokens_in: int
    est_cost_usd: float | None  # None: price unknown
    selection: Selection | None = None  # what a labelling run was asked for (None: best-of-N's comparisons)
    continuation: Continuation | None = None  # the unfinished run this one goes on with

    def describe(self, model: str) -> str:
        """Both prices where the price is known: live, and as an OpenAI batch (judge/batch.py: half, within 24 h)."""
        from prefstudio.judge.batch import BATCH_PRICE_FACTOR  # batch.py builds on this module

        cost = (f"~${self.est_cost_usd:,.2f} live or ~${self.est_cost_usd * BATCH_PRICE_FACTOR:,.2f} as a batch"
                if self.est_cost_usd is not None else
                "cost unknown (no price for this model; set [judge] prices in workspace.toml)")
        going_on = f"{self.continuation.describe()}; " if self.continuation else ""
        return (
            f"{going_on}{len(self.tasks):,} pairs to judge with {model}: {self.calls_needed:,} calls "
            f"({self.calls_cached:,} answered before, free), ~{self.est_tokens_in:,} input tokens, {cost}"
        )


@dataclass
class RunStats:
    run_id: str
    pairs_total: int
    calls_total: int
    pairs_done: int = 0
    calls_made: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    inconsistent: int = 0
    parse_errors: int = 0
    failed_pairs: int = 0  # pairs left without a label: their calls got no answer after every retry
    state: str = "running"
    message: str = ""
    started: float = field(default_factory=time.monotonic)
    retry_at: float | None = None  # monotonic time of the latest pending retry, while any call waits to retry
    waiting_for: str = ""  # why: "rate limited", "HTTP 503", "an empty answer"

    @property
    def calls_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.calls_made / elapsed if elapsed > 0 else 0.0

    @property
    def inconsistency_rate(self) -> float:
        return self.inconsistent / self.pairs_done if self.pairs_done else 0.0

    @property
    def retry_in_s(self) -> int | None:
        """Whole seconds until the next retry while calls wait on one (a countdown to show), else None."""
        if self.retry_at is None:
            return None
        return max(0, math.ceil(self.retry_at - time.monotonic()))

    def waiting(self) -> str:
        """"rate limited; retrying in 37 s" while calls wait to retry, else ""."""
        left = self.retry_in_s
        return "" if left is None else f"{self.waiting_for}; retrying in {left} s"

    def live_status(self) -> str:
        """The progress line's text: the countdown first while calls wait, then the running numbers."""
        numbers = (f"{self.calls_per_s:.1f} calls/s · {self.tokens_in + self.tokens_out:,} tokens · "
                   f"${self.cost_usd:.4f} · {self.inconsistent} inconsistent · {self.retries} retries")
        waiting = self.waiting()
        return f"{waiting} · {numbers}" if waiting else numbers

    def summary(self) -> str:
        return (
            f"judge run {self.run_id} {self.state}: {self.pairs_done:,}/{self.pairs_total:,} pairs, "
            f"{self.calls_made:,} calls ({self.calls_per_s:.1f}/s), {self.tokens_in + self.tokens_out:,} tokens, "
            f"${self.cost_usd:,.4f}; inconsistent {self.inconsistent:,} ({self.inconsistency_rate:.1%}), "
            f"parse errors {self.parse_errors:,}" + (f"; {self.message}" if self.message else "")
        )


_NOT_ANNOTATED = ("NOT EXISTS (SELECT 1 FROM annotations a WHERE a.pair_id = p.id AND a.annotator_kind = 'llm' "
                  "AND a.annotator_id = ? AND a.prompt_version = ?)")
# The latest label of this judge is a parse error (the latest counts: reparse and re-asks add rows).
_LATEST_IS_PARSE_ERROR = (
    "(SELECT a.outcome FROM annotations a WHERE a.pair_id = p.id AND a.annotator_kind = 'llm' "
    "AND a.annotator_id = ? AND a.prompt_version = ? ORDER BY a.id DESC LIMIT 1) = 'parse_error'"
)


def select_pairs(
    con,
    *,
    model: str,
    prompt_identity: str,
    source: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    pair_ids: list[int] | None = None,
    parse_errors: bool = False,
) -> list[tuple[int, str, str, str]]:
    """Pairs this judge (model + prompt) has not annotated yet, in id order.

    `parse_errors`: instead, the pairs whose latest label from this judge is a parse error.
    """
    where = [_LATEST_IS_PARSE_ERROR if parse_errors else _NOT_ANNOTATED]
    params: list = [model, prompt_identity]
    picked, picked_params = source_split_where(source, split)
    where, params = where + picked, params + picked_params
    if pair_ids is not None:
        where.append("list_contains(?, p.id)")
        params.append(pair_ids)
    sql = f"SELECT id, prompt, chosen, rejected FROM pairs p WHERE {' AND '.join(where)} ORDER BY id"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return con.execute(sql, params).fetchall()


def plan_run(con, settings: JudgeConfig, prompt: JudgePrompt, pairs: list[tuple[int, str, str, str]], *,
             reask_unparsed: bool = False) -> RunPlan:
    """What is to be called and what it costs; answers in the cache are free.

    `reask_unparsed`: cached answers with no verdict in them are asked again (`annotate --retry-errors`).
    """
    identity = prompt.identity
    tasks = [
        PairTask(pid, x, c, r, call_key(settings.model, identity, x, c, r), call_key(settings.model, identity, x, r, c))
        for pid, x, c, r in pairs
    ]
    keys = [t.key_ab for t in tasks] + [t.key_ba for t in tasks]
    cached = {
        key: CallResult(resp, tin or 0, tout or 0, cost or 0.0, json.loads(probs) if probs else None)
        for key, resp, tin, tout, cost, probs in con.execute(
            "SELECT cache_key, response, tokens_in, tokens_out, cost_usd, verdict_probs FROM judge_calls "
            "WHERE list_contains(?, cache_key)",
            [keys],
        ).fetchall()
        if not (reask_unparsed and parse_verdict(resp) is None)
    }
    needed, tokens, counted = 0, 0, set()
    for task in tasks:
        for chosen_as, key in (("A", task.key_ab), ("B", task.key_ba)):
            if key in cached:
                task.results[chosen_as] = cached[key]
            elif key not in counted:  # the same call twice in a run (duplicate pairs) is made, and paid, once
                counted.add(key)
                needed += 1
                text = "".join(m["content"] for m in prompt.messages(task.prompt, task.chosen, task.rejected))
                tokens += len(text) // 4 + 8
    prices = settings.prices(settings.model)
    cost = None if prices is None else (tokens * prices[0] + needed * expected_output_tokens(con, settings) * prices[1]) / 1e6
    return RunPlan(tasks, needed, sum(len(t.results) for t in tasks), tokens, cost)


def expected_output_tokens(con, settings: JudgeConfig) -> float:
    """Output tokens a call of this judge will bill: the mean over its answered calls in the workspace, else a
    first guess (REASONING_OUTPUT_TOKENS for a reasoning model, EXPECTED_OUTPUT_TOKENS for another)."""
    (measured,) = con.execute("SELECT avg(tokens_out) FROM judge_calls WHERE model = ? AND tokens_out > 0",
                              [settings.model]).fetchone()
    if measured:
        return float(measured)
    return REASONING_OUTPUT_TOKENS if is_reasoning_model(settings) else EXPECTED_OUTPUT_TOKENS


class _FatalAPIError(Exception):
    """The endpoint said something that retrying will not fix (bad key, unknown model)."""


class _PairFailed(Exception):
    """A call of this pair got no answer after every retry: the pair is left unlabelled, the run goes on."""


def api_key(base_url: str | None, advice: Advice = COMMAND_LINE_ADVICE) -> str:
    """The API key, from the environment only (never a file, never a log)."""
    key = os.environ.get(API_KEY_ENV)
    if not key:
        if not base_url:
            raise PrefstudioError(f"{API_KEY_ENV} is not set; {advice.set_key}, or {advice.set_base_url} for a "
                                  f"local server that needs no key")
        key = "no-key"  # local servers (vLLM, llama.cpp, Ollama) often need none
    return key


def make_client(settings: JudgeConfig, advice: Advice = COMMAND_LINE_ADVICE) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key(settings.base_url, advice), base_url=settings.base_url, max_retries=0,
                              timeout=settings.timeout_s)


class JudgeRun:
    """One run over a plan. `run()` is a coroutine; `cancel()` may be called from any thread."""

    def __init__(
        self,
        con,
        settings: JudgeConfig,
        prompt: JudgePrompt,
        plan: RunPlan,
        margins: MarginConfig,
        *,
        workspace: Path,
        on_progress: Callable[[RunStats], None] | None = None,
        client: openai.AsyncOpenAI | None = None,
        retry_delay: Callable[[int, Exception], float] = backoff,
        advice: Advice = COMMAND_LINE_ADVICE,
    ):
        self.con = con
        self.settings = settings
        self.prompt = prompt
        self.plan = plan
        self.margins = margins
        self.workspace = Path(workspace)
        self.on_progress = on_progress
        self.client = client
        self.retry_delay = retry_delay
        self.advice = advice
        self.stats = RunStats(uuid.uuid4().hex[:12], len(plan.tasks), plan.calls_needed)
        self._prices = settings.prices(settings.model) or (0.0, 0.0)
        self._cancelled = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._main: asyncio.Task | None = None
        self._calls: dict[str, asyncio.Task] = {}  # cache key -> its call: a key asked twice is paid once
        self._waiting = 0  # calls waiting to retry
        self._failures: list[str] = []
        self._refused: set[str] = set()  # optional request parts this endpoint refused: asked without from then on

    @classmethod
    def for_workspace(cls, ws, settings: JudgeConfig, prompt: JudgePrompt, plan: RunPlan, *, con=None,
                      on_progress: Callable[[RunStats], None] | None = None,
                      advice: Advice = COMMAND_LINE_ADVICE) -> "JudgeRun":
        """A run writing to `ws` (through `con`, a cursor, when run from another thread)."""
        return cls(con or ws.con, settings, prompt, plan, ws.config.margins, workspace=ws.path,
                   on_progress=on_progress, advice=advice)

    def cancel(self) -> None:
        self._cancelled.set()
        if self._loop and self._main:
            self._loop.call_soon_threadsafe(self._main.cancel)

    async def run(self) -> RunStats:
        self._loop = asyncio.get_running_loop()
        self._main = asyncio.current_task()
        client = self.client or make_client(self.settings, self.advice)
        writer = RunWriter(self.con, self.workspace, self.stats.run_id)
        asked = self.plan.selection or Selection(None, None, None, None)
        writer.statement(
            "INSERT INTO judge_runs (id, model, base_url, prompt_version, state, started_at, n_pairs, purpose, source, "
            "split, pair_limit, continues) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            [self.stats.run_id, self.settings.model, self.settings.base_url, self.prompt.identity, _now(),
             len(self.plan.tasks), asked.purpose, asked.source, asked.split, asked.limit,
             self.plan.continuation.chain if self.plan.continuation else None],
        )
        semaphore = asyncio.Semaphore(max(1, self.settings.concurrency))
        try:
            if self._cancelled.is_set():
                raise asyncio.CancelledError
            async with asyncio.TaskGroup() as group:
                for task in self.plan.tasks:
                    group.create_task(self._judge_pair(client, semaphore, writer, task))
            self.stats.state = "done"
            if self._failures:
                self.stats.message = (f"{len(self._failures):,} pair(s) got no answer and stay unlabelled "
                                      f"({self._failures[0]}); rerun to try them again")
        except asyncio.CancelledError:
            self.stats.state, self.stats.message = "cancelled", "rerun to go on: answered calls are kept"
        except BaseExceptionGroup as group:
            first = next(e for e in group.exceptions if not isinstance(e, asyncio.CancelledError))
            if not isinstance(first, _FatalAPIError):
                raise first from None
            self.stats.state, self.stats.message = "failed", str(first)
        finally:
            if self.client is None:
                await client.close()
            try:
                writer.statement(
                    "UPDATE judge_runs SET state = ?, message = ?, finished_at = ?, n_calls = ?, n_cached = ?, "
                    "n_inconsistent = ?, n_parse_errors = ?, tokens_in = ?, tokens_out = ?, cost_usd = ? WHERE id = ?",
                    [self.stats.state, self.stats.message, _now(), self.stats.calls_made, self.plan.calls_cached,
                     self.stats.inconsistent, self.stats.parse_errors, self.stats.tokens_in, self.stats.tokens_out,
                     self.stats.cost_usd, self.stats.run_id],
                )
            finally:  # a writer that failed refuses the statement: it must still stop its threads and say why
                writer.close()
                self._report()
        return self.stats

    def _report(self) -> None:
        if self.on_progress:
            self.on_progress(self.stats)

    async def _judge_pair(self, client, semaphore, writer: RunWriter, task: PairTask) -> None:
        if len(task.results) == 2:  # both calls answered in an earlier run: only the label is missing
            self._complete(writer, task)
            return
        orders = [("A", task.key_ab, task.chosen, task.rejected), ("B", task.key_ba, task.rejected, task.chosen)]
        # Both orders run to their end even when one fails: an order left running would outlive the run.
        outcomes = await asyncio.gather(*(
            self._call_and_store(client, semaphore, writer, task, *order)
            for order in orders if order[0] not in task.results
        ), return_exceptions=True)
        errors = [e for e in outcomes if isinstance(e, BaseException)]
        for error in errors:
            if not isinstance(error, _PairFailed):
                raise error
        if errors:  # an answered order is kept (journaled), and free on the rerun
            self.stats.failed_pairs += 1
            self._failures.append(f"pair {task.pair_id}: {errors[0]}")
            self._report()

    async def _call_and_store(self, client, semaphore, writer, task, chosen_as, key, response_a, response_b) -> None:
        call = self._calls.get(key)
        if call is None:
            call = self._calls[key] = asyncio.ensure_future(
                self._call(client, semaphore, writer, task, chosen_as, key, response_a, response_b))
        task.results[chosen_as] = await call
        self._complete(writer, task)

    def _call_row(self, task: PairTask, chosen_as: str, key: str, result: CallResult) -> dict:
        return {
            "cache_key": key, "model": self.settings.model, "prompt_version": self.prompt.identity,
            "pair_id": task.pair_id, "chosen_as": chosen_as, "response": result.response,
            "tokens_in": result.tokens_in, "tokens_out": result.tokens_out, "cost_usd": result.cost_usd,
            "run_id": self.stats.run_id, "created_at": now_text(),
            "verdict_probs": None if result.verdict_probs is None else json.dumps(result.verdict_probs),
        }

    def _complete(self, writer: RunWriter, task: PairTask) -> None:
        """Once both orders are answered, the pair's label."""
        if len(task.results) == 2:
            self.store(writer, task, self._judgement(task))
            self.stats.pairs_done += 1
        self._report()

    def _judgement(self, task: PairTask) -> Judgement:
        judgement = combine(parse_verdict(task.results["A"].response), parse_verdict(task.results["B"].response))
        if judgement.outcome == "inconsistent":
            self.stats.inconsistent += 1
        elif judgement.outcome == "parse_error":
            self.stats.parse_errors += 1
        return judgement

    def store(self, writer: RunWriter, task: PairTask, judgement: Judgement) -> None:
        """Where a judged pair goes: an annotation. A subclass may store it elsewhere (best-of-N's win rate)."""
        writer.label(self._annotation(task, judgement))

    def _annotation(self, task: PairTask, judgement: Judgement) -> dict:
        ab, ba = task.results["A"], task.results["B"]
        margin = None
        if judgement.level is not None:
            margin = signed_margin(self.margins, judgement.level, judgement.flip)
        return {
            "pair_id": task.pair_id, "annotator_id": self.settings.model, "outcome": judgement.outcome,
            "level": judgement.level, "flip": judgement.flip, "margin": margin, "prompt_version": self.prompt.identity,
            "raw_response_ab": ab.response, "raw_response_ba": ba.response,
            "tokens_in": ab.tokens_in + ba.tokens_in, "tokens_out": ab.tokens_out + ba.tokens_out,
            "cost_usd": ab.cost_usd + ba.cost_usd, "run_id": self.stats.run_id,
            "expected_level": expected_level(ab.verdict_probs, ba.verdict_probs) if judgement.level is not None else None,
        }

    async def _call(self, client, semaphore, writer: RunWriter, task: PairTask, chosen_as: str, key: str,
                    response_a: str, response_b: str) -> CallResult:
        """One call, retried; its answer is on disk when this returns (module docstring)."""
        messages = self.prompt.messages(task.prompt, response_a, response_b)
        attempt = 0
        while True:
            async with semaphore:  # held until the answer is on disk: at most `concurrency` paid and not kept
                request = chat_request(self.settings, messages, prompt=self.prompt, without=self._refused)
                try:
                    reply = await client.chat.completions.create(**request)
                    text = answer_text(reply)
                    usage = getattr(reply, "usage", None)
                    tokens_in, tokens_out = token_count(usage, "prompt_tokens"), token_count(usage, "completion_tokens")
                    probs = verdict_distribution(text, answer_logprobs(reply)) if request.get("logprobs") else None
                    result = CallResult(text, tokens_in, tokens_out,
                                        (tokens_in * self._prices[0] + tokens_out * self._prices[1]) / 1e6, probs)
                    await asyncio.wrap_future(writer.answer(self._call_row(task, chosen_as, key, result)))
                    break
                except (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError,
                        openai.InternalServerError, openai.APIResponseValidationError, NoAnswer) as exc:
                    error = exc
                except json.JSONDecodeError:  # a body sent as JSON that is not
                    error = NoAnswer("a body that is not JSON")
                except openai.APIStatusError as exc:
                    if exc.status_code >= 500 or exc.status_code == 408:
                        error = exc
                    else:
                        part = refused_part(server_said(exc), request) if exc.status_code == 400 else None
                        if part is None:
                            raise _FatalAPIError(_describe_status(exc, self.settings, self.advice)) from None
                        self._refused.add(part)  # e.g. no JSON-schema answers here: this run asks for text
                        continue  # at once, and not a retry: the endpoint answered, it was the request
            if attempt >= self.settings.max_retries:
                if isinstance(error, NoAnswer):
                    raise _PairFailed(f"{_endpoint(self.settings)} sent {error} {attempt + 1} times") from None
                raise _FatalAPIError(
                    f"{_endpoint(self.settings)} kept failing ({_describe_transient(error)}) after "
                    f"{attempt + 1} tries; rerun later to go on, answered calls are kept"
                )
            self.stats.retries += 1
            await self._wait_to_retry(attempt, error)
            attempt += 1
        self.stats.calls_made += 1
        self.stats.tokens_in += tokens_in
        self.stats.tokens_out += tokens_out
        self.stats.cost_usd += result.cost_usd
        return result

    async def _wait_to_retry(self, attempt: int, error: Exception) -> None:
        """Backoff, or the server's Retry-After up to retry_after_cap_s; the countdown is reported each second."""
        delay = self.retry_delay(attempt, error)
        asked = retry_after(error)
        if asked is not None:
            delay = max(delay, min(asked, self.settings.retry_after_cap_s))
        deadline = time.monotonic() + delay
        self.stats.retry_at = max(self.stats.retry_at or 0.0, deadline)
        self.stats.waiting_for = _describe_wait(error)
        self._waiting += 1
        try:
            while (left := deadline - time.monotonic()) > 0:
                self._report()
                await asyncio.sleep(min(1.0, left))
        finally:
            self._waiting -= 1
            if not self._waiting:
                self.stats.retry_at, self.stats.waiting_for = None, ""


def _endpoint(settings: JudgeConfig) -> str:
    return settings.base_url or "the OpenAI API"


def _describe_wait(exc: Exception) -> str:
    if isinstance(exc, openai.RateLimitError):
        return "rate limited"
    if isinstance(exc, NoAnswer):
        return f"got {exc}"
    return _describe_transient(exc)


def _describe_transient(exc: Exception) -> str:
    if isinstance(exc, NoAnswer):
        return str(exc)
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    return type(exc).__name__


def _describe_status(exc: openai.APIStatusError, settings: JudgeConfig, advice: Advice) -> str:
    """One line: what the refusal means here, then the server's own words (never the key), which say why."""
    where = _endpoint(settings)
    said = server_said(exc, os.environ.get(API_KEY_ENV))
    said = f"; the server said: {said}" if said else ""
    if exc.status_code == 401:
        return f"{where} refused the API key (HTTP 401); check {API_KEY_ENV}{said}"
    if exc.status_code == 404:
        return f"{where} does not know model {settings.model!r} (HTTP 404); {advice.other_model}{said}"
    return f"{where} refused the request (HTTP {exc.status_code}); {advice.check_endpoint}{said}"


def prepare_run(
    ws,
    settings: JudgeConfig,
    *,
    con=None,
    source: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    pair_ids: list[int] | None = None,
    retry_errors: bool = False,
) -> tuple[JudgePrompt, RunPlan]:
    """Which pairs a run would judge and what it would cost, before anything is spent.

    `con`: a cursor to use instead of the workspace's connection (from a worker thread).
    `limit`: pairs judged by this run and the runs it continues (judge/continuation.py): asked again after a
    cancel, the run takes only what the limit has left.
    `retry_errors`: the pairs whose latest label from this judge is a parse error, their answers
    without a verdict asked again (the ones that parse are reused, free).
    """
    from prefstudio.judge.prompts import load_prompt

    if limit is not None and limit < 1:
        raise PrefstudioError(f"limit {limit}: must be a whole number of at least 1 (or none for all pairs)")
    con = con or ws.con
    prompt = load_prompt(settings.prompt, ws.path)
    replay_journals(con, ws.path)  # before the cache is read (a killed run's answers are free) and labels counted
    selection = continuation = None
    if pair_ids is None:  # a run over chosen pairs records no selection and is never continued
        selection = Selection(RETRY_ERRORS if retry_errors else LABEL, source, split, limit)
        continuation = find_continuation(con, model=settings.model, prompt_identity=prompt.identity,
                                         selection=selection)
    pairs = select_pairs(con, model=settings.model, prompt_identity=prompt.identity, source=source, split=split,
                         limit=continuation.left if continuation else limit, pair_ids=pair_ids,
                         parse_errors=retry_errors)
    plan = plan_run(con, settings, prompt, pairs, reask_unparsed=retry_errors)
    plan.selection, plan.continuation = selection, continuation
    return prompt, plan


def reparse(con, margins: MarginConfig) -> tuple[int, int]:
    """Parse stored raw answers of the judge's parse errors again; no API call.

    A pair whose answers now parse gets a new annotation (the latest one
    counts); the old row stays as the record of what happened. Its soft label
    comes from the verdict distributions its two calls keep in the cache, as a
    run's would.
    Returns (parse errors looked at, fixed).
    """
    rows = con.execute(
        """
        SELECT a.id, a.pair_id, a.annotator_id, a.prompt_version, a.raw_response_ab, a.raw_response_ba,
               a.tokens_in, a.tokens_out, a.cost_usd, a.run_id,
               (SELECT any_value(c.verdict_probs) FROM judge_calls c WHERE c.pair_id = a.pair_id AND c.chosen_as = 'A'
                AND c.model = a.annotator_id AND c.prompt_version = a.prompt_version AND c.response = a.raw_response_ab),
               (SELECT any_value(c.verdict_probs) FROM judge_calls c WHERE c.pair_id = a.pair_id AND c.chosen_as = 'B'
                AND c.model = a.annotator_id AND c.prompt_version = a.prompt_version AND c.response = a.raw_response_ba)
        FROM annotations a
        WHERE a.annotator_kind = 'llm'
        QUALIFY row_number() OVER (PARTITION BY a.pair_id, a.annotator_id, a.prompt_version ORDER BY a.id DESC) = 1
              AND a.outcome = 'parse_error'
        """
    ).fetchall()
    fixed = 0
    with transaction(con):
        for ann_id, pair_id, model, version, raw_ab, raw_ba, tin, tout, cost, run_id, probs_ab, probs_ba in rows:
            judgement = combine(parse_verdict(raw_ab), parse_verdict(raw_ba))
            if judgement.outcome == "parse_error":
                continue
            margin = signed_margin(margins, judgement.level, judgement.flip)
            soft = (expected_level(*(json.loads(p) if p else None for p in (probs_ab, probs_ba)))
                    if judgement.level is not None else None)
            con.execute(
                "INSERT INTO annotations (pair_id, annotator_kind, annotator_id, outcome, level, flip, margin, "
                "prompt_version, raw_response_ab, raw_response_ba, tokens_in, tokens_out, cost_usd, run_id, extra, "
                "expected_level) VALUES (?, 'llm', ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?)",
                [pair_id, model, judgement.outcome, judgement.level, judgement.flip, margin, version,
                 raw_ab, raw_ba, run_id, f'{{"reparsed_from": {ann_id}}}', soft],
            )
            fixed += 1
    return len(rows), fixed
