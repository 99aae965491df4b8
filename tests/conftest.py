"""Shared test setup: no network.

Every test runs with the socket connections of this process limited to loopback and Unix sockets: connecting
anywhere else raises `NetworkBlockedError` (a RuntimeError, so that the usual "offline, try the cache" handling of
OSError does not swallow it), and the test that tried fails even if something caught the error. DNS is never asked:
a host name other than `localhost` is refused as it is. Binding and listening on loopback (free ports, gloo
rendezvous) are untouched, and subprocesses (`torchrun`, `python -m hf_nlpft ...`) are outside this guard.
"""

from __future__ import annotations

import ipaddress
import socket
import sys

import pytest


class NetworkBlockedError(RuntimeError):
    """A test tried to open a connection to a non-loopback address."""


ATTEMPTS: list[str] = []  # every refused address, for the per-test check (tests of the guard clear it)


def _is_local(family: int, address) -> bool:
    if family == getattr(socket, "AF_UNIX", None) or isinstance(address, (str, bytes)):
        return True  # a Unix socket path (or abstract name)
    host = address[0] if isinstance(address, tuple) and address else address
    if isinstance(host, bytes):
        host = host.decode()
    if not isinstance(host, str):
        return False
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:  # a host name: refused without a DNS lookup
        return False


def _refuse(address) -> None:
    ATTEMPTS.append(repr(address))
    raise NetworkBlockedError(f"tests may not use the network: connection to {address!r} refused (loopback only)")


@pytest.fixture(scope="session", autouse=True)
def no_network():
    """Loopback-only sockets for the whole session."""
    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex
    original_create_connection = socket.create_connection

    def connect(self, address):
        if not _is_local(self.family, address):
            _refuse(address)
        return original_connect(self, address)

    def connect_ex(self, address):
        if not _is_local(self.family, address):
            _refuse(address)
        return original_connect_ex(self, address)

    def create_connection(address, *args, **kwargs):
        if not _is_local(socket.AF_INET, address):
            _refuse(address)
        return original_create_connection(address, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", connect)
        patch.setattr(socket.socket, "connect_ex", connect_ex)
        patch.setattr(socket, "create_connection", create_connection)
        yield


@pytest.fixture
def network_guard():
    """This module (its NetworkBlockedError and ATTEMPTS), for the tests of the guard, whatever the import mode."""
    return sys.modules[__name__]


@pytest.fixture(autouse=True)
def fail_on_network_attempts():
    """A test that tried the network fails, even when the code under test caught the error."""
    ATTEMPTS.clear()
    yield
    if ATTEMPTS:
        attempts = list(ATTEMPTS)
        ATTEMPTS.clear()
        pytest.fail(f"the test tried to open network connections: {attempts}")
