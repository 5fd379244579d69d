"""An OpenAI-compatible completions server on 127.0.0.1 for the writer tests (standard library only).

No model server can run in these tests' time (the real embedded model is tested locally, in-process); this one
speaks the same HTTP — ``GET /v1/models``, ``POST /v1/completions``, bearer tokens, error statuses — and answers
with what the test scripts: ``answer(prompt, body) -> str``. That makes the writer's checks testable on
answers a real server gives when it ignores a constraint (prose, two sentences, a line break) or fails.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Script:
    answer: Callable[[str, dict], str]
    token: str | None = None
    fail_next: list[int] = field(default_factory=list)     # statuses to answer with before answering
    requests: list[dict] = field(default_factory=list)
    headers: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    @property
    def script(self) -> Script:
        return self.server.script  # type: ignore[attr-defined]

    def _send(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _gate(self) -> bool:
        with self.script.lock:
            self.script.headers.append(dict(self.headers))
            if self.script.fail_next:
                status = self.script.fail_next.pop(0)
                self._send(status, {"error": {"message": f"scripted failure {status}"}})
                return False
        if self.script.token and self.headers.get("Authorization") != f"Bearer {self.script.token}":
            self._send(401, {"error": {"message": "invalid token"}})
            return False
        return True

    def do_GET(self):
        if not self._gate():
            return
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "scripted-model", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        if not self._gate():
            return
        if self.path != "/v1/completions":
            self._send(404, {"error": {"message": "not found"}})
            return
        with self.script.lock:
            self.script.requests.append(body)
        text = self.script.answer(body["prompt"], body)
        self._send(200, {"object": "text_completion", "model": body.get("model"),
                         "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]})


class CompletionsServer:
    """Started on a free loopback port; ``url`` is its base address; ``stop()`` ends it."""

    def __init__(self, script: Script):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.script = script  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
