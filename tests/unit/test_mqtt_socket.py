"""BufferedSocket over a real (loopback) socket pair: reads served from one kernel read, writes held
until paho's pre-select probe, nothing lost or reordered either way."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from vpp.mqtt_socket import BufferedSocket


@pytest.fixture
def pair() -> Iterator[tuple[BufferedSocket, socket.socket]]:
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.settimeout(2)
    yield BufferedSocket(ours), peer
    ours.close()
    peer.close()


def test_small_reads_are_served_from_one_kernel_read_in_order(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.sendall(b"\x30\x05hello" * 3)
    assert sock.recv(1) == b"\x30"
    assert sock.buffered() == 20  # the rest came in with the first read
    assert sock.recv(1) == b"\x05"
    assert sock.recv(5) == b"hello"
    assert sock.recv(100) == b"\x30\x05hello\x30\x05hello"  # a short read, as a socket gives
    assert sock.buffered() == 0
    with pytest.raises(BlockingIOError):
        sock.recv(1)  # nothing buffered and nothing in the kernel: what paho expects


def test_a_large_read_is_not_split_when_it_fits(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    body = bytes(range(256)) * 400  # 100 KiB, more than one chunk
    peer.sendall(body)
    got = bytearray()
    while len(got) < len(body):
        try:
            got += sock.recv(len(body) - len(got))
        except BlockingIOError:
            continue
    assert bytes(got) == body


def test_a_closed_peer_reads_as_end_of_stream(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.sendall(b"ab")
    peer.shutdown(socket.SHUT_WR)
    assert sock.recv(1) == b"a"
    assert sock.recv(1) == b"b"
    assert sock.recv(1) == b""


def test_writes_wait_for_the_pending_probe_then_leave_in_order(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.setblocking(False)
    for mid in range(1, 501):
        assert sock.send(b"\x40\x02" + mid.to_bytes(2, "big")) == 4  # 500 PUBACKs
    with pytest.raises(BlockingIOError):
        peer.recv(10)  # held back so far
    assert sock.pending() == 0  # flushed: nothing left to send or read
    peer.settimeout(2)
    received = b""
    while len(received) < 2000:
        received += peer.recv(4096)
    assert received == b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in range(1, 501))


def test_pending_counts_unread_bytes_so_paho_does_not_wait_in_select(
    pair: tuple[BufferedSocket, socket.socket],
) -> None:
    sock, peer = pair
    peer.sendall(b"xyz")
    assert sock.pending() == 0  # the kernel holds them: select will see them
    sock.recv(1)
    assert sock.pending() == 2  # we hold them: select would not


def test_close_flushes_what_is_held(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    sock.send(b"\xe0\x00")  # DISCONNECT, paho's last write before it closes the socket
    sock.close()
    assert peer.recv(10) == b"\xe0\x00"
    assert peer.recv(10) == b""


def test_a_write_to_a_dead_connection_is_dropped_not_raised(pair: tuple[BufferedSocket, socket.socket]) -> None:
    sock, peer = pair
    peer.close()
    sock.send(b"\x40\x02\x00\x01")
    sock.pending()  # must not raise: paho does not expect it here, and finds out on its next read
    assert sock.pending() == 0
