"""The LLM judge through the OpenAI Batch API: the same calls as a live run, at half the price, within 24 h.

A batch asks exactly what a live run would (runner.prepare_run's plan: both orders of every pair whose call
is not cached; one line per call, `custom_id` = the call's cache key, `body` = request.chat_request), and its
answers go into `judge_calls` as a live run's do, at the batch price. The pairs' labels are then made by a
normal JudgeRun over the batch's pairs whose two calls are cached: it pays for nothing. A line that got no
answer stays uncached, so the next run (batch or live) asks it again; nothing is paid twice across the two.

The batch is journaled in `judge_batches` (docs/schema.md), one row per submission, so a closed terminal or a
killed process goes on polling it. The order of writes, and what a crash at each point leaves:

1. the input file is written to judge/batches/<id>.jsonl, then the row (`preparing`);
2. the file is uploaded, then its `input_file_id` is recorded;
3. the batch is created, then its `batch_id` is recorded.

A batch is only ever created for a row that already holds its `input_file_id`. Resuming a row:
- without `input_file_id`: nothing was submitted, nothing paid; the row is dropped (`abandoned`) and the
  calls are planned afresh (an uploaded, unrecorded file is left at the provider, unused and unpaid);
- with `input_file_id` but no `batch_id` (a crash during step 3): the provider's newest batches are searched
  for one made from that file; only when none is found is the batch created, so a resume never submits the
  same calls twice, unless the provider's list does not yet show a batch created in the instant before the
  crash (or more than LIST_LIMIT batches were made since, on the same account);
- with `batch_id`: it is polled.
While a row is unfinished (`finished_at` NULL) `annotate --batch` polls it and submits nothing new: a second
batch over the same pairs would be paid for twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import openai
from openai.types import Batch
from openai.types.chat import ChatCompletion
from pydantic import ValidationError

from prefstudio.config import JudgeConfig
from prefstudio.db import transaction
from prefstudio.errors import PrefstudioError, first_line
from prefstudio.judge.continuation import LABEL, Selection, find_continuation
from prefstudio.judge.journal import _insert_calls, now_text
from prefstudio.judge.prompts import JudgePrompt
from prefstudio.judge.replies import NoAnswer, answer_logprobs, answer_text, token_count
from prefstudio.judge.request import chat_request
from prefstudio.judge.runner import (COMMAND_LINE_ADVICE, Advice, JudgeRun, RunPlan, RunStats, api_key, call_key,
                                     prepare_run)
from prefstudio.judge.verdict import verdict_distribution
from prefstudio.settings import judge_settings

BATCH_PRICE_FACTOR = 0.5  # the Batch API's price, as a share of the live price
ENDPOINT = "/v1/chat/completions"
COMPLETION_WINDOW = "24h"
BATCH_DIR = Path("judge") / "batches"  # not judge/*.jsonl: those are run journals, replayed as answers
POLL_SECONDS = 60.0
LIST_LIMIT = 100  # the provider's newest batches searched for one created just before a crash
PROVIDER_FINISHED = ("completed", "failed", "expired", "cancelled")


@dataclass
class BatchRecord:
    """A row of judge_batches."""

    id: str  # ours; also the run_id of its answers in judge_calls
    batch_id: str | None
    input_file_id: str | None
    model: str
    base_url: str | None
    prompt_version: str
    state: str
    n_requests: int
    selection: dict  # prompt, source, split, limit, pair_ids
    created_at: datetime

    @property
    def name(self) -> str:
        return self.batch_id or f"{self.id} (ours: the provider's id is not recorded yet)"

    def describe(self) -> str:
        return (f"batch {self.name} of {self.model}: {self.n_requests:,} calls, submitted "
                f"{self.created_at:%Y-%m-%d %H:%M} UTC")

    def settings(self, defaults: JudgeConfig) -> JudgeConfig:
        """The judge the batch asked: its model, endpoint and prompt over the workspace's other defaults."""
        return judge_settings(defaults, model=self.model, base_url=self.base_url or "",
                              prompt=self.selection["prompt"])


@dataclass
class BatchResult:
    """What a finished batch brought: answers kept (at the batch price) and lines that got none."""

    record: BatchRecord
    status: str  # the provider's final status
    answered: int
    failed: int
    cost_usd: float
    first_error: str = ""

    @property
    def complete(self) -> bool:
        return self.status == "completed" and not self.failed

    def summary(self) -> str:
        line = (f"batch {self.record.batch_id} {self.status}: {self.answered:,} of {self.record.n_requests:,} calls "
                f"answered, ${self.cost_usd:,.4f} (batch price)")
        left = self.record.n_requests - self.answered
        if self.status == "failed" and not self.answered:
            return (f"batch {self.record.batch_id} failed at the provider ({self.first_error or 'no reason given'}); "
                    f"nothing was answered or paid: fix that and run annotate --batch again, or use --judge")
        if left:
            why = f" ({self.first_error})" if self.first_error else ""
            line += (f"; {left:,} got no answer{why}: their pairs stay unlabelled and are asked again by the next "
                     f"annotate --batch or --judge")
        return line


def make_batch_client(settings: JudgeConfig, advice: Advice = COMMAND_LINE_ADVICE) -> openai.OpenAI:
    """A blocking client: a batch is a handful of calls, one after the other; the SDK retries its own hiccups."""
    return openai.OpenAI(api_key=api_key(settings.base_url, advice), base_url=settings.base_url, max_retries=2,
                         timeout=settings.timeout_s)


def pending_batch(con) -> BatchRecord | None:
    """The unfinished batch of the workspace (there is at most one: module docstring), or None."""
    row = con.execute(
        "SELECT id, batch_id, input_file_id, model, base_url, prompt_version, state, n_requests, selection, "
        "created_at FROM judge_batches WHERE finished_at IS NULL ORDER BY created_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    return BatchRecord(*row[:8], json.loads(row[8]), row[9])


def batch_lines(settings: JudgeConfig, prompt: JudgePrompt, plan: RunPlan) -> list[dict]:
    """One request per call the plan needs: a call asked by two pairs (duplicates) is asked, and paid, once."""
    lines: dict[str, dict] = {}
    for task in plan.tasks:
        for chosen_as, key, a, b in (("A", task.key_ab, task.chosen, task.rejected),
                                     ("B", task.key_ba, task.rejected, task.chosen)):
            if chosen_as not in task.results and key not in lines:
                body = chat_request(settings, prompt.messages(task.prompt, a, b), prompt=prompt)
                lines[key] = {"custom_id": key, "method": "POST", "url": ENDPOINT, "body": body}
    return list(lines.values())


def submit(ws, settings: JudgeConfig, prompt: JudgePrompt, plan: RunPlan, client: openai.OpenAI) -> BatchRecord:
    """Write, record, upload and create the batch of `plan`'s missing calls, in the order the module docstring gives."""
    lines = batch_lines(settings, prompt, plan)
    if not lines:
        raise PrefstudioError("every call of these pairs is answered already: nothing to send as a batch")
    record = BatchRecord(uuid.uuid4().hex[:12], None, None, settings.model, settings.base_url, prompt.identity,
                         "preparing", len(lines), _selection(settings, plan),
                         datetime.now(timezone.utc).replace(tzinfo=None))
    path = input_path(ws.path, record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
        out.flush()
        os.fsync(out.fileno())
    ws.con.execute(
        "INSERT INTO judge_batches (id, model, base_url, prompt_version, state, n_requests, selection, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [record.id, record.model, record.base_url, record.prompt_version, record.state, record.n_requests,
         json.dumps(record.selection), record.created_at],
    )
    try:
        uploaded = client.files.create(file=(f"prefstudio-{record.id}.jsonl", path.read_bytes()), purpose="batch")
    except openai.APIError as exc:
        _finish(ws.con, record, "failed", f"upload refused: {_describe(exc, settings)}")
        raise PrefstudioError(f"{_endpoint(settings)} did not take the batch file ({_describe(exc, settings)}); "
                              f"nothing was submitted or paid") from None
    record.input_file_id, record.state = uploaded.id, "uploaded"
    _update(ws.con, record, input_file_id=uploaded.id)
    _create(ws.con, record, client, settings)
    return record


def resume(ws, record: BatchRecord, client: openai.OpenAI, settings: JudgeConfig) -> BatchRecord | None:
    """Carry an unfinished row on to a batch to poll; None when nothing was ever submitted (then plan afresh)."""
    if record.batch_id:
        return record
    if record.input_file_id is None:
        _finish(ws.con, record, "abandoned", "stopped before its file was uploaded: nothing was submitted")
        input_path(ws.path, record.id).unlink(missing_ok=True)
        return None
    try:
        found = next((b for b in client.batches.list(limit=LIST_LIMIT).data
                      if b.input_file_id == record.input_file_id), None)
    except openai.APIError as exc:
        raise PrefstudioError(
            f"could not list the batches at {_endpoint(settings)} ({_describe(exc, settings)}) to see whether batch "
            f"file {record.input_file_id} was submitted before the last run stopped; nothing new was submitted: "
            f"run annotate --batch again") from None
    if found is not None:
        record.batch_id, record.state = found.id, found.status
        _update(ws.con, record, batch_id=found.id)
        return record
    _create(ws.con, record, client, settings)
    return record


def wait(client: openai.OpenAI, record: BatchRecord, settings: JudgeConfig, *, poll_s: float = POLL_SECONDS,
         on_poll: Callable[[Batch], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> Batch:
    """Poll until the provider has finished the batch. Needs no workspace: it stays free for the app meanwhile."""
    while True:
        try:
            batch = client.batches.retrieve(record.batch_id)
        except openai.APIError as exc:
            raise PrefstudioError(
                f"could not poll batch {record.batch_id} at {_endpoint(settings)} ({_describe(exc, settings)}); "
                f"it goes on there: run annotate --batch again to poll it") from None
        if on_poll:
            on_poll(batch)
        if batch.status in PROVIDER_FINISHED:
            return batch
        sleep(poll_s)


def poll_line(batch: Batch) -> str:
    """One line per poll: the provider's status and how many lines it has answered."""
    counts = batch.request_counts
    done, total, failed = (counts.completed, counts.total, counts.failed) if counts else (0, 0, 0)
    return f"batch {batch.id}: {batch.status}, {done:,}/{total:,} answered" + (f", {failed:,} failed" if failed else "")


def collect(ws, record: BatchRecord, batch: Batch, client: openai.OpenAI, settings: JudgeConfig) -> BatchResult:
    """Store the answers of a finished batch in judge_calls, at the batch price, and close its row, in one commit.

    Asked twice (two processes, or a crash before the commit), it stores the same answers again: harmless.
    """
    calls = _calls_of(ws.con, record)
    prices = settings.prices(record.model) or (0.0, 0.0)
    rows, failed, first_error = [], 0, ""
    for file_id in (batch.output_file_id, batch.error_file_id):
        for line in _file_lines(client, file_id, settings):
            row, error = _answer_row(line, calls, record, prices)
            if row is not None:
                rows.append(row)
            else:
                failed += 1
                first_error = first_error or error
    if batch.status == "failed" and batch.errors and batch.errors.data:
        first_error = batch.errors.data[0].message or first_error
    result = BatchResult(record, batch.status, len(rows), failed, sum(r["cost_usd"] for r in rows), first_error)
    record.state = batch.status
    with transaction(ws.con):
        if rows:
            _insert_calls(ws.con, rows)
        ws.con.execute(
            "UPDATE judge_batches SET state = ?, output_file_id = ?, error_file_id = ?, message = ?, finished_at = ? "
            "WHERE id = ?",
            [batch.status, batch.output_file_id, batch.error_file_id, result.summary(), _now(), record.id],
        )
    input_path(ws.path, record.id).unlink(missing_ok=True)  # its lines are asked again from a new plan, if at all
    return result


def label(ws, record: BatchRecord, settings: JudgeConfig, *,
          on_progress: Callable[[RunStats], None] | None = None) -> RunStats | None:
    """Label the batch's pairs whose two calls are cached, by a normal JudgeRun that makes no call (None: none).

    The run is recorded as a labelling run of the batch's selection, so a run with a limit continues its chain.
    """
    prompt, plan = prepare_run(ws, settings, pair_ids=record.selection["pair_ids"])
    if prompt.identity != record.prompt_version:
        raise PrefstudioError(
            f"prompt {settings.prompt!r} changed since batch {record.batch_id} was submitted ({record.prompt_version} "
            f"then, {prompt.identity} now); its answers are kept for the old version: put that prompt back to label "
            f"from them, free")
    ready = [task for task in plan.tasks if len(task.results) == 2]
    if not ready:
        return None
    chosen = record.selection
    selection = Selection(LABEL, chosen["source"], chosen["split"], chosen["limit"])
    continuation = find_continuation(ws.con, model=settings.model, prompt_identity=prompt.identity,
                                     selection=selection)
    labelling = RunPlan(ready, 0, 2 * len(ready), 0, 0.0, selection=selection, continuation=continuation)
    run = JudgeRun.for_workspace(ws, settings, prompt, labelling, on_progress=on_progress)
    return asyncio.run(run.run())


def input_path(workspace: Path, batch: str) -> Path:
    return Path(workspace) / BATCH_DIR / f"{batch}.jsonl"


# -- helpers ------------------------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _selection(settings: JudgeConfig, plan: RunPlan) -> dict:
    asked = plan.selection or Selection(LABEL, None, None, None)
    return {"prompt": settings.prompt, "source": asked.source, "split": asked.split, "limit": asked.limit,
            "pair_ids": [task.pair_id for task in plan.tasks]}


def _update(con, record: BatchRecord, **columns) -> None:
    sets = ", ".join(f"{name} = ?" for name in columns)
    con.execute(f"UPDATE judge_batches SET {sets}, state = ? WHERE id = ?",
                [*columns.values(), record.state, record.id])


def _finish(con, record: BatchRecord, state: str, message: str) -> None:
    record.state = state
    con.execute("UPDATE judge_batches SET state = ?, message = ?, finished_at = ? WHERE id = ?",
                [state, message, _now(), record.id])


def _create(con, record: BatchRecord, client: openai.OpenAI, settings: JudgeConfig) -> None:
    """Create the batch from the recorded file. A refusal closes the row; an error that leaves it unknown whether
    the batch exists (a timeout, a lost connection) leaves the row for resume() to look for it."""
    try:
        batch = client.batches.create(input_file_id=record.input_file_id, endpoint=ENDPOINT,
                                      completion_window=COMPLETION_WINDOW, metadata={"prefstudio_batch": record.id})
    except openai.APIStatusError as exc:
        if exc.status_code < 500 and exc.status_code != 408:
            _finish(con, record, "failed", f"refused: {_describe(exc, settings)}")
            raise PrefstudioError(f"{_endpoint(settings)} refused the batch ({_describe(exc, settings)}); nothing "
                                  f"was submitted or paid") from None
        raise _unknown(exc, record, settings) from None
    except openai.APIError as exc:
        raise _unknown(exc, record, settings) from None
    record.batch_id, record.state = batch.id, batch.status
    _update(con, record, batch_id=batch.id)


def _unknown(exc: Exception, record: BatchRecord, settings: JudgeConfig) -> PrefstudioError:
    return PrefstudioError(
        f"no answer from {_endpoint(settings)} when creating the batch ({_describe(exc, settings)}); it may exist: "
        f"run annotate --batch again, which looks for it (file {record.input_file_id}) before submitting")


def _endpoint(settings: JudgeConfig) -> str:
    return settings.base_url or "the OpenAI API"


def _describe(exc: Exception, settings: JudgeConfig) -> str:
    """The server's own words where it sent some, in one line."""
    if isinstance(exc, openai.APIStatusError):
        said = exc.body.get("message") if isinstance(exc.body, dict) else None  # the SDK unwraps {"error": ...}
        text = f"HTTP {exc.status_code}" + (f": {first_line(str(said))}" if said else "")
        if exc.status_code == 404:
            text += "; does this endpoint have a Batch API? --judge asks live"
        return text
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    return first_line(str(exc)) or type(exc).__name__


def _calls_of(con, record: BatchRecord) -> dict[str, tuple[int, str]]:
    """cache key -> (pair, where its chosen response was shown): the batch's calls, from its pairs' texts."""
    calls = {}
    for pair_id, prompt, chosen, rejected in con.execute(
        "SELECT id, prompt, chosen, rejected FROM pairs WHERE list_contains(?, id)", [record.selection["pair_ids"]]
    ).fetchall():
        calls[call_key(record.model, record.prompt_version, prompt, chosen, rejected)] = (pair_id, "A")
        calls[call_key(record.model, record.prompt_version, prompt, rejected, chosen)] = (pair_id, "B")
    return calls


def _file_lines(client: openai.OpenAI, file_id: str | None, settings: JudgeConfig) -> list[dict]:
    if not file_id:
        return []
    try:
        text = client.files.content(file_id).text
    except openai.APIError as exc:
        raise PrefstudioError(f"could not download batch file {file_id} from {_endpoint(settings)} "
                              f"({_describe(exc, settings)}); run annotate --batch again to collect it") from None
    lines = []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines


def _answer_row(line: dict, calls: dict[str, tuple[int, str]], record: BatchRecord,
                prices: tuple[float, float]) -> tuple[dict | None, str]:
    """A judge_calls row for an answered line, read as a live call's reply is; else (None, why not)."""
    key = line.get("custom_id")
    response = line.get("response") or {}
    if key not in calls:
        return None, f"a line for a call this batch did not ask ({key!r})"
    if response.get("status_code") != 200:
        error = line.get("error") or (response.get("body") or {}).get("error") or {}
        code = f"HTTP {response['status_code']}" if response.get("status_code") else error.get("code", "no reply")
        return None, f"{code}: {first_line(str(error.get('message', '')))}".rstrip(": ")
    try:
        reply = ChatCompletion.model_validate(response.get("body"))
        text = answer_text(reply)
    except ValidationError:
        return None, "a reply that is not a chat completion"
    except NoAnswer as exc:
        return None, str(exc)
    tokens_in, tokens_out = token_count(reply.usage, "prompt_tokens"), token_count(reply.usage, "completion_tokens")
    cost = (tokens_in * prices[0] + tokens_out * prices[1]) / 1e6 * BATCH_PRICE_FACTOR
    pair_id, chosen_as = calls[key]
    probs = verdict_distribution(text, answer_logprobs(reply))  # None where the line asked for no logprobs
    return {
        "cache_key": key, "model": record.model, "prompt_version": record.prompt_version, "pair_id": pair_id,
        "chosen_as": chosen_as, "response": text, "tokens_in": tokens_in, "tokens_out": tokens_out,
        "cost_usd": cost, "run_id": record.id, "created_at": now_text(),
        "verdict_probs": None if probs is None else json.dumps(probs),
    }, ""
