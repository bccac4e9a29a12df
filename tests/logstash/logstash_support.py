"""Shared by the Logstash tests: the repository's logstash/ tree and a recording HTTP server
standing in for OpenSearch and OpenSearch Dashboards. (A uniquely named module rather than
conftest.py: other test folders import their own conftest by name.)"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LOGSTASH_DIR = Path(__file__).resolve().parents[2] / "logstash"


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Reply = tuple[int, str]
Responder = Callable[[Recorded], Reply]


@dataclass
class SearchStandIn:
    """Answers like OpenSearch and Dashboards do for the calls the bootstrap makes; a test can
    queue replies per path prefix (e.g. a 503 while "starting") before the defaults apply."""

    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    queued: dict[str, list[Reply]] = field(default_factory=dict)
    ism_exists: bool = False

    def queue(self, path_prefix: str, *replies: Reply) -> None:
        self.queued.setdefault(path_prefix, []).extend(replies)

    def answer(self, request: Recorded) -> Reply:
        self.requests.append(request)
        for prefix, replies in self.queued.items():
            if request.path.startswith(prefix) and replies:
                return replies.pop(0)
        if request.path.startswith("/_plugins/_ism/policies/"):
            if request.method == "GET":
                if not self.ism_exists:
                    return 404, '{"error":"not found"}'
                return 200, '{"_id":"p","_seq_no":7,"_primary_term":2,"policy":{}}'
            self.ism_exists = True
            return (200 if "if_seq_no" in request.path else 201), '{"_id":"p"}'
        if request.path.startswith("/_index_template/"):
            return 200, '{"acknowledged":true}'
        if request.path.startswith("/api/saved_objects/_import"):
            objects = sum(
                1 for line in request.body.splitlines() if line.startswith(b"{") and b'"id"' in line
            )
            return 200, f'{{"success":true,"successCount":{objects}}}'
        return 404, "{}"


@contextmanager
def running_search_stand_in() -> Iterator[SearchStandIn]:
    stand_in = SearchStandIn()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorded = Recorded(
                method=self.command,
                path=self.path,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length),
            )
            status, body = stand_in.answer(recorded)
            payload = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stand_in.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
