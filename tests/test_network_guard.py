"""The no-network guard of conftest.py: it refuses outside addresses and lets loopback through."""

from __future__ import annotations

import socket
import threading

import pytest


@pytest.mark.parametrize(
    "connect",
    [lambda: socket.create_connection(("203.0.113.1", 80), timeout=1),
     lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect(("203.0.113.1", 80)),
     lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).connect_ex(("203.0.113.1", 80)),
     lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).connect(("2001:db8::1", 443, 0, 0)),
     lambda: socket.create_connection(("huggingface.co", 443), timeout=1)],  # refused before any DNS lookup
    ids=["create_connection", "connect", "connect_ex", "ipv6", "host-name"],
)
def test_outside_addresses_are_refused(connect, network_guard):
    with pytest.raises(network_guard.NetworkBlockedError, match="tests may not use the network"):
        connect()
    assert network_guard.ATTEMPTS  # recorded: the test would fail even had the error been caught
    network_guard.ATTEMPTS.clear()  # expected here


def test_loopback_still_connects(network_guard):
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
        thread.start()
        with socket.create_connection(("localhost", port), timeout=5) as client:
            client.sendall(b"ok")
        thread.join(5)
        with accepted[0] as connection:
            assert connection.recv(2) == b"ok"
    assert network_guard.ATTEMPTS == []
