"""A test publisher that behaves like a site gateway: QoS 1, persistent session, resends on reconnect."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt

from vpp.mqtt import close_client, make_client, session_properties


class GatewayPublisher:
    def __init__(self, host: str, port: int, client_id: str = "test-gateway") -> None:
        self.client = make_client(client_id)
        self._acked = 0
        self._sent = 0
        self._cond = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.connect(host, port, keepalive=10, clean_start=False, properties=session_properties())
        self.client.loop_start()

    def _on_publish(self, _c: mqtt.Client, _u: Any, _mid: int, _rc: Any, _p: Any) -> None:
        with self._cond:
            self._acked += 1
            self._cond.notify_all()

    def publish(self, topic: str, body: Any, qos: int = 1) -> None:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.client.publish(topic, payload, qos=qos)
        if qos:
            self._sent += 1

    def publish_many(self, items: Iterable[tuple[str, Any]]) -> None:
        for topic, body in items:
            self.publish(topic, body)

    def wait_acked(self, timeout_s: float = 30.0) -> None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._acked >= self._sent, timeout_s):
                raise TimeoutError(f"broker acked {self._acked} of {self._sent} messages")

    def close(self) -> None:
        close_client(self.client)
