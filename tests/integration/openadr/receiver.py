"""A webhook receiver on 127.0.0.1: answers a scripted status per request and records what arrived."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Receiver:
    url: str
    statuses: list[int]  # answered in order; 200 once they run out
    attempts: int = 0
    received: list[tuple[dict[str, Any], str | None]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait(self, count: int, timeout_s: float = 10.0) -> None:
        """Wait until `count` requests were accepted (2xx)."""
        while True:
            with self.lock:
                if len(self.received) >= count:
                    return
                self.arrived.clear()
            if not self.arrived.wait(timeout_s):
                raise AssertionError(f"only {len(self.received)} of {count} webhook calls arrived")


@contextmanager
def receiving(statuses: list[int] | None = None) -> Iterator[Receiver]:
    receiver = Receiver("", list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if 200 <= status < 300:
                    receiver.received.append((json.loads(body), self.headers.get("authorization")))
                    receiver.arrived.set()
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/callback"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
