"""Many paho clients on one asyncio loop: paho's external-loop API instead of a thread each.

paho calls back when it opens or closes a socket and when it has bytes to write; this module
turns those calls into ``loop.add_reader`` / ``add_writer`` registrations, so one thread
serves the sockets of hundreds of clients (``loop_read`` when readable, ``loop_write`` when
writable, ``loop_misc`` once a second for keepalives).

The TCP connect is made non-blocking too. paho's own ``socket.create_connection`` blocks
until the handshake completes; on a terminal that stalls only its own network thread, here
it would stall every client of the process (a SYN the broker's full accept queue drops is
retried by the kernel after a second). The CONNECT packet is queued as usual and written
once the socket turns writable.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import socket
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho


def nonblocking_connection(client: paho.Client) -> socket.socket:
    """What paho's ``_create_socket_connection`` does, without waiting for the handshake."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    err = sock.connect_ex((client.host, client.port))
    if err not in (0, errno.EINPROGRESS):
        sock.close()
        raise OSError(err, os.strerror(err))
    return sock


def tcp_established(client: paho.Client) -> bool:
    sock = client.socket()
    if sock is None:
        return False
    try:
        sock.getpeername()
    except OSError:
        return False
    return True


def abort_connecting(client: paho.Client) -> None:
    """Give up a TCP connect that did not complete in time (what paho's connect timeout does
    to a blocking connect): the socket is closed, which ends the attempt."""
    client._sock_close()


class PahoOnLoop:
    """Drives the sockets of the clients attached to it from the running asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, misc_every_s: float = 1.0) -> None:
        self.loop = loop
        self.clients: set[paho.Client] = set()
        self.misc_every_s = misc_every_s
        self._misc_task: asyncio.Task[None] | None = None

    def attach(self, client: paho.Client, on_closed: Callable[[], None] = lambda: None) -> None:
        """Take over ``client``'s network I/O. ``on_closed`` runs whenever paho closes its
        socket (connection refused, lost, timed out, or a clean disconnect)."""
        opened = client.on_socket_open  # e.g. the agent's TCP_NODELAY hook
        loop = self.loop

        def on_open(c: paho.Client, userdata: Any, sock: Any) -> None:
            if opened is not None:
                opened(c, userdata, sock)
            loop.add_reader(sock, self._readable, c)

        def on_close(c: paho.Client, userdata: Any, sock: Any) -> None:
            loop.remove_reader(sock)
            loop.remove_writer(sock)
            on_closed()

        client.on_socket_open = on_open
        client.on_socket_close = on_close
        client.on_socket_register_write = lambda c, userdata, sock: loop.add_writer(sock, self._writable, c)
        client.on_socket_unregister_write = lambda c, userdata, sock: loop.remove_writer(sock)
        client._create_socket_connection = functools.partial(nonblocking_connection, client)
        self.clients.add(client)
        if self._misc_task is None:
            self._misc_task = loop.create_task(self._misc(), name="paho-misc")

    def detach(self, client: paho.Client) -> None:
        self.clients.discard(client)

    @staticmethod
    def _readable(client: paho.Client) -> None:
        client.loop_read()  # on an error paho closes the socket itself (on_close above)

    @staticmethod
    def _writable(client: paho.Client) -> None:
        client.loop_write()

    async def _misc(self) -> None:
        while True:
            await asyncio.sleep(self.misc_every_s)
            for client in list(self.clients):
                if client.socket() is not None:
                    client.loop_misc()  # keepalive PINGREQ, and the PINGRESP timeout

    def close(self) -> None:
        if self._misc_task is not None:
            self._misc_task.cancel()
            self._misc_task = None
