"""A small OpenAI-compatible HTTP server on loopback, for testing the real client end to end.

Behaviour is scripted by markers in the last user message:
  [429]   first attempt answers 429 with Retry-After: 1
  [500]   first two attempts answer 500
  [slow]  first attempt sleeps `slow_s` (longer than the client's timeout)
  [fail]  always 500
Every request is counted per distinct body, so tests can assert "each request answered once". With `hold_after`
set, chat requests after that many attempts wait (in flight) until `release` is set.

Structured output (`response_format`), by `structured`:
  "ignore"  answer free text as if the field were absent (an old server that drops unknown fields)
  "honour"  answer `{"verdict": LABEL}` with a label of the schema's enum: `answer_for`'s text when it
            is one of them, else the first (a constrained decoder always yields a label)
  "reject"  HTTP 400 naming response_format, as a server without structured output does
`structured_requests` counts the chat requests (and batch lines) that carried a response_format.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


REJECTION = "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model."


class FakeOpenAI:
    def __init__(self, latency_s: float = 0.0, slow_s: float = 3.0, structured: str = "ignore"):
        assert structured in ("ignore", "honour", "reject")
        self.latency_s = latency_s
        self.slow_s = slow_s
        self.structured = structured
        self.structured_requests = 0
        self.attempts: Counter = Counter()  # by request body hash, every attempt
        self.answered: Counter = Counter()  # by request body hash, 200 responses only
        self.models = ["gpt-4o-2024-08-06", "gpt-4o-mini"]
        self.in_flight = 0
        self.max_in_flight = 0  # the most chat requests the server was answering at once
        self.barrier: threading.Barrier | None = None  # chat requests wait for this many others
        self.arrivals: list[float] = []  # time.monotonic() of every chat request's arrival
        self.hold_after: int | None = None  # chat requests after this many are held until `release` is set
        self.release = threading.Event()
        self.authorizations: Counter = Counter()  # the Authorization header of every chat request
        self.hub_models: list[str] = []  # what GET /api/models (the HF hub's listing) returns
        self.hub_queries: list[dict] = []
        self.files: dict[str, bytes] = {}
        self.jobs: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self.batch_polls: Counter = Counter()
        self.job_polls: Counter = Counter()
        self.polls_until_done = 2
        self.failing_jobs: set[str] = set()  # fine-tuning job ids that end "failed" instead of "succeeded"
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # notified whenever answered or in_flight change
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        # A client that timed out has closed its socket: the late answer's broken pipe is expected.
        self.server.handle_error = lambda request, address: None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    @property
    def total_attempts(self) -> int:
        return sum(self.attempts.values())

    def wait_until(self, predicate, timeout: float = 600.0) -> None:
        """Block until `predicate(self)` holds (checked on every answer); the timeout only bounds a hang."""
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self), timeout=timeout):
                raise TimeoutError(f"server state never satisfied the test's condition in {timeout:.0f} s: "
                                   f"{sum(self.answered.values())} answered, {self.in_flight} in flight")

    def start(self) -> "FakeOpenAI":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def answer_for(messages: list[dict]) -> str:
        last = messages[-1]["content"]
        return f"answer to: {last[:60]}"

    def reply(self, body: dict) -> str | None:
        """The answer text for a chat body; None: reject it (a response_format this server does not take)."""
        text = self.answer_for(body["messages"])
        response_format = body.get("response_format")
        if not response_format or self.structured == "ignore":
            return text
        if self.structured == "reject":
            return None
        labels = response_format["json_schema"]["schema"]["properties"]["verdict"]["enum"]
        return json.dumps({"verdict": text.strip().upper() if text.strip().upper() in labels else labels[0]})

    def _finish_batch(self, batch: dict) -> None:
        """Answer every line of the batch's input file (called under the lock)."""
        outputs, errors = [], []
        for raw in self.files[batch["input_file_id"]].decode().splitlines():
            if '"custom_id"' not in raw:
                continue  # multipart framing around the JSONL
            line = json.loads(raw)
            messages = line["body"]["messages"]
            self.structured_requests += "response_format" in line["body"]
            text = self.reply(line["body"])
            if "[fail]" in messages[-1]["content"] or text is None:
                status, message = (500, "internal error") if text is not None else (400, REJECTION)
                errors.append({"id": f"req_{len(errors)}", "custom_id": line["custom_id"], "error": None,
                               "response": {"status_code": status, "body": {"error": {"message": message}}}})
                continue
            outputs.append({"id": f"req_{len(outputs)}", "custom_id": line["custom_id"], "error": None, "response": {
                "status_code": 200, "body": {
                    "id": "chatcmpl-batch", "object": "chat.completion", "created": 0, "model": line["body"]["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10 * len(messages), "completion_tokens": len(text.split()),
                              "total_tokens": 10 * len(messages) + len(text.split())}}}})
        for name, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files) + 1:04d}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                batch[name] = file_id
        batch["status"] = "completed"

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real API servers do

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                path = self.path.rstrip("/")
                if path.startswith("/v1/fine_tuning/jobs/"):
                    job_id = path.rsplit("/", 1)[1]
                    if job_id not in fake.jobs:
                        return self._send(404, {"error": {"message": f"no job {job_id}"}})
                    with fake.lock:
                        fake.job_polls[job_id] += 1
                        job = fake.jobs[job_id]
                        if fake.job_polls[job_id] >= fake.polls_until_done and job_id in fake.failing_jobs:
                            job.update(status="failed")
                        elif fake.job_polls[job_id] >= fake.polls_until_done:
                            n = job["hyperparameters"]["n_epochs"]
                            job.update(status="succeeded", trained_tokens=1000 * n,
                                       fine_tuned_model=f"ft:{job['model']}:test:{job['suffix']}:{job_id[-6:]}")
                        else:
                            job["status"] = "running"
                    return self._send(200, job)
                if path.startswith("/v1/batches/"):
                    batch_id = path.rsplit("/", 1)[1]
                    if batch_id not in fake.batches:
                        return self._send(404, {"error": {"message": f"no batch {batch_id}"}})
                    with fake.lock:
                        fake.batch_polls[batch_id] += 1
                        batch = fake.batches[batch_id]
                        if fake.batch_polls[batch_id] >= fake.polls_until_done and batch["status"] != "completed":
                            fake._finish_batch(batch)
                        elif batch["status"] != "completed":
                            batch["status"] = "in_progress"
                    return self._send(200, batch)
                if path.startswith("/v1/files/") and path.endswith("/content"):
                    file_id = path.split("/")[3]
                    data = fake.files.get(file_id)
                    if data is None:
                        return self._send(404, {"error": {"message": f"no file {file_id}"}})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                if path.startswith("/api/models"):
                    query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                    fake.hub_queries.append(query)
                    author, search = query.get("author", [""])[0], query.get("search", [""])[0]
                    found = [m for m in fake.hub_models if (not author or m.startswith(author + "/")) and search in m]
                    limit = int(query.get("limit", [len(found)])[0])
                    return self._send(200, [{"id": m, "modelId": m, "_id": m} for m in found[:limit]])
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "test"} for m in fake.models]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.rstrip("/") == "/v1/files":
                    file_id = f"file-{len(fake.files) + 1:04d}"
                    fake.files[file_id] = raw
                    return self._send(200, {"id": file_id, "object": "file", "bytes": len(raw), "created_at": 0,
                                            "filename": "train.jsonl", "purpose": "fine-tune", "status": "processed"})
                if self.path.rstrip("/") == "/v1/batches":
                    body = json.loads(raw)
                    if body.get("input_file_id") not in fake.files:
                        return self._send(400, {"error": {"message": "unknown input_file_id"}})
                    batch_id = f"batch_{len(fake.batches) + 1:06d}"
                    batch = {"id": batch_id, "object": "batch", "endpoint": body["endpoint"],
                             "input_file_id": body["input_file_id"], "completion_window": body["completion_window"],
                             "status": "validating", "created_at": int(time.time()), "output_file_id": None,
                             "error_file_id": None, "metadata": body.get("metadata")}
                    with fake.lock:
                        fake.batches[batch_id] = batch
                    return self._send(200, batch)
                if self.path.rstrip("/") == "/v1/fine_tuning/jobs":
                    body = json.loads(raw)
                    if body.get("training_file") not in fake.files:
                        return self._send(400, {"error": {"message": "unknown training_file"}})
                    job_id = f"ftjob-{len(fake.jobs) + 1:06d}"
                    hyper = body.get("hyperparameters", {})
                    job = {"id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()),
                           "model": body["model"], "training_file": body["training_file"], "status": "queued",
                           "fine_tuned_model": None, "trained_tokens": None, "suffix": body.get("suffix", ""),
                           "seed": body.get("seed", 0), "hyperparameters": hyper, "organization_id": "org-test",
                           "result_files": [], "validation_file": None, "error": None, "finished_at": None}
                    fake.jobs[job_id] = job
                    return self._send(200, job)
                if self.path.rstrip("/") != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                body = json.loads(raw)
                key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
                with fake.lock:
                    fake.arrivals.append(time.monotonic())
                    fake.attempts[key] += 1
                    attempt = fake.attempts[key]
                    fake.structured_requests += "response_format" in body
                    fake.authorizations[self.headers.get("Authorization", "")] += 1
                last = body["messages"][-1]["content"]
                with fake.lock:
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    held = fake.hold_after is not None and fake.total_attempts > fake.hold_after
                    fake.changed.notify_all()
                if held:
                    fake.release.wait(timeout=600)
                if fake.barrier is not None:
                    # Requests are answered in groups of `barrier.parties`: concurrency is reached by
                    # construction, not by hoping that a sleep is long enough on a busy machine.
                    try:
                        fake.barrier.wait(timeout=600)
                    except threading.BrokenBarrierError:
                        pass
                if fake.latency_s:
                    time.sleep(fake.latency_s)
                with fake.lock:
                    fake.in_flight -= 1
                    fake.changed.notify_all()
                if "[fail]" in last or ("[500]" in last and attempt <= 2):
                    return self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
                if "[429]" in last and attempt == 1:
                    return self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}},
                                      {"Retry-After": "1"})
                if "[slow]" in last and attempt == 1:
                    time.sleep(fake.slow_s)
                text = fake.reply(body)
                if text is None:
                    return self._send(400, {"error": {"message": REJECTION, "type": "invalid_request_error",
                                                      "param": "response_format", "code": None}})
                with fake.lock:
                    fake.answered[key] += 1
                    fake.changed.notify_all()
                self._send(200, {
                    "id": f"chatcmpl-{key[:12]}", "object": "chat.completion", "created": int(time.time()),
                    "model": body["model"],
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 10 * len(body["messages"]), "completion_tokens": len(text.split()),
                              "total_tokens": 10 * len(body["messages"]) + len(text.split())},
                })

        return Handler


def serve_forever(latency_s: float) -> None:
    """Run a server in this process until killed; prints its base URL first (for benchmarks)."""
    server = FakeOpenAI(latency_s=latency_s).start()
    print(server.base_url, flush=True)
    server.thread.join()


if __name__ == "__main__":
    import sys

    serve_forever(float(sys.argv[1]) if len(sys.argv) > 1 else 0.0)
