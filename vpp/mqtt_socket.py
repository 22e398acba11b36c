"""A paho client for high-rate subscribers: one socket read per many packets, one write per many acks.

paho reads each packet with three `recv` calls (type byte, length bytes, body) and goes once through
`select` per packet; it writes each PUBACK with its own `send`. Every one of those system calls
releases and retakes the interpreter lock, and ingest's validation thread is waiting for it: at
6,000 one-reading messages per second, py-spy put a third of the network thread's samples in
`recv` and `select`, and that thread was the bottleneck of end-to-end ingest.

`BufferedSocket` serves paho's small reads from one 64 KiB `recv` and collects its writes until
paho's loop comes round again (it asks every socket for `pending()` bytes before each `select`,
which is where the collected bytes go out). `BufferedClient.loop_read` then handles every packet
already buffered instead of one per `select`.

`BufferedClient` also decodes a PUBLISH without MQTT v5 properties (every telemetry message) without
building paho's `Properties` object, which alone took a sixth of the network thread: its constructor
fills two dictionaries of 27 entries, and decoding clears every one of them again.

This leans on private paho methods (`_create_socket`, `_handle_publish`, `_handle_on_message`,
`_send_puback`, the `pending()` probe meant for TLS sockets), so pyproject pins paho to 2.2.x;
`tests/integration/test_mqtt_buffered_client.py` checks the overrides are still reached, and fails
if a paho upgrade moves them.

Use it with `loop_start()`: the write buffer is not locked, so only paho's network thread may write,
which is what paho's threaded mode guarantees.
"""

from __future__ import annotations

import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

__all__ = ["BufferedClient", "BufferedSocket"]

_READ_CHUNK_BYTES = 64 * 1024
_WRITE_FLUSH_BYTES = 64 * 1024
_MAX_PACKETS_PER_READ = 2_000  # bounds how long writes (acks, pings) wait behind a full buffer
# Shared by every message decoded on the fast path: they all carry no properties. Read-only by convention.
_NO_PROPERTIES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]


class BufferedSocket:
    """Wraps paho's (non-blocking) socket; anything not overridden goes to the real socket."""

    __slots__ = ("_rbuf", "_rpos", "_sock", "_wbuf")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._rbuf = b""
        self._rpos = 0
        self._wbuf = bytearray()

    # -- reading -----------------------------------------------------------------------------
    def recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            # Raises BlockingIOError (or SSLWantReadError) when nothing is there, as paho expects.
            data: bytes = self._sock.recv(max(bufsize, _READ_CHUNK_BYTES))
            if len(data) <= bufsize:
                return data  # includes b"": the peer closed the connection
            self._rbuf, self._rpos = data, 0
        start = self._rpos
        self._rpos = min(start + bufsize, len(self._rbuf))
        return self._rbuf[start : self._rpos]

    def buffered(self) -> int:
        """Bytes read from the kernel that paho has not taken yet."""
        return len(self._rbuf) - self._rpos

    def pending(self) -> int:
        """paho's probe before each `select`: flush collected writes, report what is left to read.

        A non-zero answer makes paho skip waiting in `select` and read at once; unflushed bytes
        (the kernel's send buffer was full) count too, so the loop comes back to send them.
        """
        if self._wbuf:
            self._flush()
        inner = getattr(self._sock, "pending", None)  # TLS: decrypted bytes the kernel no longer shows
        return self.buffered() + (inner() if inner else 0) + (1 if self._wbuf else 0)

    # -- writing -----------------------------------------------------------------------------
    def send(self, data: bytes | bytearray | memoryview) -> int:
        self._wbuf += data
        if len(self._wbuf) >= _WRITE_FLUSH_BYTES:
            self._flush()
        return len(data)

    def _flush(self) -> None:
        try:
            sent = self._sock.send(self._wbuf)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return  # the kernel buffer is full: `pending()` stays non-zero and the loop retries
        except OSError:
            # The connection is gone; paho finds out on its next read and reconnects. What was
            # not sent are acks and pings of a dead session, which the broker redelivers or forgets.
            self._wbuf.clear()
            return
        del self._wbuf[:sent]

    def close(self) -> None:
        if self._wbuf:
            self._flush()  # DISCONNECT is the last thing paho writes before closing
        self._sock.close()

    def fileno(self) -> int:
        return int(self._sock.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BufferedClient(mqtt.Client):
    """A paho `Client` whose connections use `BufferedSocket`."""

    def _create_socket(self) -> Any:
        return BufferedSocket(super()._create_socket())

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        for _ in range(_MAX_PACKETS_PER_READ):
            sock = self._sock
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or not isinstance(sock, BufferedSocket) or not sock.buffered():
                break
            rc = super().loop_read(max_packets)
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        """QoS 0 and 1 messages without properties; anything else goes to paho's own decoder."""
        header: int = self._in_packet["command"]
        packet: bytes | bytearray = self._in_packet["packet"]
        qos = (header & 0x06) >> 1
        if self._protocol != mqtt.MQTTv5 or qos > 1 or len(packet) < 3:
            return super()._handle_publish()
        topic_end = 2 + int.from_bytes(packet[0:2], "big")
        props_at = topic_end + 2 if qos else topic_end
        if len(packet) <= props_at or packet[props_at] != 0:
            return super()._handle_publish()  # properties present, or malformed: paho decides
        message = mqtt.MQTTMessage(
            int.from_bytes(packet[topic_end:props_at], "big") if qos else 0, bytes(packet[2:topic_end])
        )
        message.dup = bool(header & 0x08)
        message.qos = qos
        message.retain = bool(header & 0x01)
        message.properties = _NO_PROPERTIES
        message.payload = bytes(packet[props_at + 1 :])  # paho hands out bytes, not its buffer
        message.timestamp = mqtt.time_func()
        self._handle_on_message(message)
        if qos == 1 and not self._manual_ack:
            return self._send_puback(message.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS
