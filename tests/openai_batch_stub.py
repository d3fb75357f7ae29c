"""The stub OpenAI server (tests/openai_stub.py) with the Files and Batches endpoints of the Batch API.

POST /v1/files (multipart, purpose=batch), POST /v1/batches, GET /v1/batches (the newest first),
GET /v1/batches/{id}, GET /v1/files/{id}/content, POST /v1/batches/{id}/cancel. A batch is `in_progress` until
it has been polled `polls_to_finish` times; then every line is answered by the chat stub's `_respond` (as a live
call would be, so its counters and modes apply) and the batch is `completed`. It can be told to fail the lines
of some prompts (HTTP 500 in the error file), to expire after answering a number of lines, or to fail whole.
`live_calls` counts requests to /v1/chat/completions: a batch run must make none.
"""

from __future__ import annotations

import json
import re
import threading
import time
from email.parser import BytesParser
from email.policy import default as default_policy

from tests.openai_stub import _SECTION, StubOpenAI

_BATCH = re.compile(r"^/v1/batches/([^/]+)(/cancel)?$")
_CONTENT = re.compile(r"^/v1/files/([^/]+)/content$")


class StubOpenAIBatch(StubOpenAI):
    def __init__(self, *args, polls_to_finish: int = 1, **kwargs):
        super().__init__(*args, **kwargs)
        self.polls_to_finish = polls_to_finish  # GETs of a batch before it is finished
        self.fail_prompts: set[str] = set()  # lines of pairs with these prompts come back as HTTP 500 errors
        self.expire_after: int | None = None  # answer this many lines, then end 'expired'
        self.fail_batch: str | None = None  # end 'failed' with this reason, answering nothing
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.batches_created = 0
        self.uploads = 0
        self.polls = 0
        self.live_calls = 0
        self._batch_lock = threading.Lock()

    # -- the Batch API ----------------------------------------------------------------------------
    def _file(self, data: bytes, filename: str, purpose: str) -> dict:
        file_id = f"file-{len(self.files) + 1}"
        self.files[file_id] = data
        return {"id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed"}

    def _create_batch(self, body: dict) -> tuple[int, dict]:
        if body.get("input_file_id") not in self.files:
            return 400, {"error": {"message": f"no file {body.get('input_file_id')}", "type": "invalid_request"}}
        self.batches_created += 1
        batch = {"id": f"batch_{self.batches_created}", "object": "batch", "endpoint": body["endpoint"],
                 "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                 "status": "validating", "created_at": int(time.time()), "metadata": body.get("metadata"),
                 "output_file_id": None, "error_file_id": None, "errors": None,
                 "request_counts": {"total": len(self._lines(body["input_file_id"])), "completed": 0, "failed": 0},
                 "_polls": 0}
        self.batches[batch["id"]] = batch
        return 200, self._public(batch)

    def _lines(self, file_id: str) -> list[dict]:
        return [json.loads(line) for line in self.files[file_id].decode().splitlines() if line.strip()]

    def _poll(self, batch: dict) -> dict:
        batch["_polls"] += 1
        self.polls += 1
        if batch["status"] in ("validating", "in_progress") and batch["_polls"] >= self.polls_to_finish:
            self._finish(batch)
        elif batch["status"] == "validating":
            batch["status"] = "in_progress"
        return self._public(batch)

    def _finish(self, batch: dict) -> None:
        if self.fail_batch:
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "message": self.fail_batch}]}
            return
        answered, errors = [], []
        for n, line in enumerate(self._lines(batch["input_file_id"])):
            prompt = dict(_SECTION.findall(line["body"]["messages"][-1]["content"])).get("conversation", "")
            if self.expire_after is not None and n >= self.expire_after:
                errors.append({"id": f"batch_req_{n}", "custom_id": line["custom_id"], "response": None,
                               "error": {"code": "batch_expired", "message": "This request could not be executed "
                                                                             "before the completion window expired."}})
                continue
            if prompt in self.fail_prompts:
                code, payload = 500, {"error": {"message": "stub line failure", "type": "server_error"}}
            else:
                code, payload, _ = self._respond(line["body"])
            reply = {"id": f"batch_req_{n}", "custom_id": line["custom_id"],
                     "response": {"status_code": code, "request_id": f"req_{n}", "body": payload}, "error": None}
            (answered if code == 200 else errors).append(reply)
        for kind, lines in (("output_file_id", answered), ("error_file_id", errors)):
            if lines:
                data = "".join(json.dumps(line) + "\n" for line in lines).encode()
                batch[kind] = self._file(data, f"{batch['id']}_{kind}.jsonl", "batch_output")["id"]
        batch["status"] = "expired" if self.expire_after is not None else "completed"
        batch["request_counts"].update(completed=len(answered), failed=len(errors))

    @staticmethod
    def _public(batch: dict) -> dict:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _route(self, method: str, path: str, headers, data: bytes) -> tuple[int, dict | bytes]:
        with self._batch_lock:
            if method == "POST" and path == "/v1/files":
                self.uploads += 1
                fields = _multipart(headers.get("content-type", ""), data)
                filename, content = fields["file"]
                return 200, self._file(content, filename, fields["purpose"][1].decode())
            if method == "POST" and path == "/v1/batches":
                return self._create_batch(json.loads(data))
            if method == "GET" and path == "/v1/batches":
                newest = sorted(self.batches.values(), key=lambda b: b["id"], reverse=True)
                return 200, {"object": "list", "data": [self._public(b) for b in newest], "has_more": False}
            if match := _BATCH.match(path):
                batch = self.batches.get(match.group(1))
                if batch is None:
                    return 404, {"error": {"message": f"no batch {match.group(1)}"}}
                if match.group(2) and method == "POST":
                    batch["status"] = "cancelled"
                    return 200, self._public(batch)
                if method == "GET":
                    return 200, self._poll(batch)
            if method == "GET" and (match := _CONTENT.match(path)) and match.group(1) in self.files:
                return 200, self.files[match.group(1)]
        return 404, {"error": {"message": f"stub: no route {method} {path}"}}

    def _handler(self):
        stub = self
        chat_handler = super()._handler()

        class Handler(chat_handler):
            def do_POST(self):  # noqa: N802
                path = self.path.split("?")[0]
                if path.endswith("/chat/completions"):
                    with stub._batch_lock:
                        stub.live_calls += 1
                    return chat_handler.do_POST(self)
                data = self.rfile.read(int(self.headers.get("content-length", 0)))
                self._send(*stub._route("POST", path, self.headers, data))

            def do_GET(self):  # noqa: N802
                self._send(*stub._route("GET", self.path.split("?")[0], self.headers, b""))

            def _send(self, code: int, payload) -> None:
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/octet-stream" if isinstance(payload, bytes)
                                 else "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _multipart(content_type: str, data: bytes) -> dict[str, tuple[str | None, bytes]]:
    """A multipart/form-data body's fields: name -> (filename, content)."""
    message = BytesParser(policy=default_policy).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + data)
    return {part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
            for part in message.iter_parts()}
