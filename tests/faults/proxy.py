"""A TCP proxy between the agent and a peer (Mosquitto, or the virtual printer) that a fault
test controls.

The agent's ``[mqtt] port`` (or its printer URL) points at the proxy; every connection it opens
is forwarded to the target by one thread. The test then breaks the network in the ways a
shop's network breaks:

- ``cut()``: close both sides of every open connection (the agent reads EOF, or a reset
  with ``reset=True``); while cut, new connections are closed as soon as they are accepted.
- ``half_open()``: the open connections go silent: both sockets stay open, every byte either
  way is read and dropped, no FIN, no RST. Only the MQTT keepalive can tell. Such a
  connection never carries a byte again (its stream lost data); it is closed when one of its
  ends closes it. New connections are refused meanwhile (``new="refuse"``, a dead link that
  fails fast) or black-holed as well (``new="blackhole"``).
- ``lose_acks()``: the agent's bytes still reach the broker, but the broker's PUBACKs and
  PUBLISHes (down/ack) to the agent are dropped, packet by packet (CONNACK, SUBACK and
  PINGRESP still pass, so the connection looks healthy): sales arrive in the cloud while the
  agent never learns it — a cut then happens with a batch "in flight".
- ``heal()``: new connections are forwarded normally again (and ``lose_acks`` ends on the
  connections it affected). Half-open connections stay dead until the agent drops them.

And a slow link (a printer behind a 9600-baud serial adapter, a weak Wi-Fi bridge):

- ``TcpProxy(..., bytes_per_s=1000)``: every byte either way is forwarded at that rate (one
  budget per direction shared by all connections, like one physical link).
- ``pause()`` / ``resume()``: the link stalls both ways; the bytes are kept, nothing is lost,
  connections stay open. ``pause_after(n)`` pauses as soon as a connection opened from then on
  has carried ``n`` bytes to the target (a print job under way, not a 9-byte status query), so
  a test can stall a job in the middle without racing it.
- A connection the agent closes (or that dies with the agent) still delivers what it had sent,
  as the kernel would, before its target side closes.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from dataclasses import dataclass

from tests.faults.throttle import Throttle

# MQTT control packet types (high nibble of the fixed header's first byte)
PUBLISH, PUBACK = 3, 4

FORWARD, CUT, REFUSE, BLACKHOLE, LOSE_ACKS = "forward", "cut", "refuse", "blackhole", "lose_acks"


@dataclass
class ProxyStats:
    accepted: int = 0  # connections accepted from the agent
    forwarded: int = 0  # of which connected through to the target
    refused: int = 0  # closed at once (cut / refusing)
    up_bytes: int = 0  # agent -> target, forwarded
    down_bytes: int = 0  # target -> agent, forwarded
    dropped_bytes: int = 0  # read and thrown away (half-open)
    dropped_packets: int = 0  # broker -> agent packets dropped by lose_acks


def _reset_on_close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class _MqttFramer:
    """Splits a byte stream into whole MQTT packets (fixed header + remaining length)."""

    def __init__(self) -> None:
        self.buffer = b""

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        packets = []
        while True:
            buf = self.buffer
            if len(buf) < 2:
                break
            length = shift = 0
            index = 1
            complete_header = False
            while index < len(buf) and index <= 4:
                byte = buf[index]
                length |= (byte & 0x7F) << shift
                shift += 7
                index += 1
                if not byte & 0x80:
                    complete_header = True
                    break
            if not complete_header or len(buf) < index + length:
                break
            packets.append(buf[: index + length])
            self.buffer = buf[index + length :]
        return packets


class _Connection:
    """One agent connection and its target side, pumped by one thread."""

    def __init__(
        self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket | None, mode: str, number: int
    ) -> None:
        self.proxy = proxy
        self.number = number  # in the order the proxy accepted them
        self.client = client
        self.upstream = upstream
        self.mode = mode  # FORWARD, BLACKHOLE or LOSE_ACKS
        self.framer = _MqttFramer()
        self.to_target = bytearray()  # read from the agent, not yet forwarded (slow or paused link)
        self.to_client = bytearray()
        self.carried_to_target = 0
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._run, name="fault-proxy-conn", daemon=True)

    def set_mode(self, mode: str) -> None:
        if self.mode == BLACKHOLE:
            return  # its stream lost bytes: it never carries any again
        self.mode = mode

    def close(self, *, reset: bool = False) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            if reset:
                _reset_on_close(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self.client, selectors.EVENT_READ, "up")
        if self.upstream is not None:
            selector.register(self.upstream, selectors.EVENT_READ, "down")
        client_gone = target_gone = False
        try:
            while not self.closed.is_set():
                wait_s = 0.01 if self.to_target or self.to_client else 0.1
                if selector.get_map():
                    events = selector.select(wait_s)
                else:  # both ends done reading, bytes still to deliver
                    time.sleep(wait_s)
                    events = []
                for key, _ in events:
                    if self.closed.is_set():
                        break
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        data = b""
                    if key.data == "up":
                        if not data:
                            # the agent closed (or died): what it sent is still on its way, as
                            # the kernel would deliver it; then the target side closes too
                            client_gone = True
                            selector.unregister(key.fileobj)
                            self.to_client.clear()
                            continue
                        self._up(data)
                    else:
                        if not data:
                            if self.mode == BLACKHOLE:
                                # the target gave up on the silent connection; the agent must
                                # not hear of it: keep its socket open and silent
                                selector.unregister(key.fileobj)
                                continue
                            target_gone = True
                            selector.unregister(key.fileobj)
                            self.to_target.clear()
                            continue
                        self._down(data)
                self._pump()
                if (client_gone and not self.to_target) or (target_gone and not self.to_client):
                    return
        except OSError:
            pass
        finally:
            selector.close()
            self.close()
            self.proxy._forget(self)

    def _up(self, data: bytes) -> None:
        if self.mode == BLACKHOLE or self.upstream is None:
            self.proxy._count(dropped_bytes=len(data))
            return
        self.to_target += data

    def _down(self, data: bytes) -> None:
        if self.mode == BLACKHOLE:
            self.proxy._count(dropped_bytes=len(data))
            return
        packets = self.framer.feed(data) if self.proxy.mqtt else [data]  # framed: lose_acks may start mid-stream
        if self.mode == LOSE_ACKS:
            kept = [p for p in packets if p[0] >> 4 not in (PUBLISH, PUBACK)]
            self.proxy._count(dropped_packets=len(packets) - len(kept))
            packets = kept
        self.to_client += b"".join(packets)

    def _pump(self) -> None:
        """Forward what the link lets through now (all of it on a fast link that is not paused)."""
        if self.mode == BLACKHOLE:
            self.proxy._count(dropped_bytes=len(self.to_target) + len(self.to_client))
            self.to_target.clear()
            self.to_client.clear()
            return
        if self.to_target and self.upstream is not None:
            size = self.proxy._may_send("up", len(self.to_target), self)
            if size:
                self.upstream.sendall(self.to_target[:size])
                del self.to_target[:size]
                self.carried_to_target += size
                self.proxy._count(up_bytes=size)
        if self.to_client:
            size = self.proxy._may_send("down", len(self.to_client), self)
            if size:
                self.client.sendall(self.to_client[:size])
                del self.to_client[:size]
                self.proxy._count(down_bytes=size)


class TcpProxy:
    """``TcpProxy(broker.host, broker.port).start()``; point the agent at ``proxy.port``.

    ``mqtt=False`` for a target that does not speak MQTT (a printer: its answers are single
    bytes, not packets; ``lose_acks`` needs MQTT). ``bytes_per_s`` makes the link slow."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        mqtt: bool = True,
        bytes_per_s: float | None = None,
    ) -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.mqtt = mqtt
        self._throttles = {"up": Throttle(bytes_per_s), "down": Throttle(bytes_per_s)} if bytes_per_s else None
        self._paused = threading.Event()
        # pause once a connection numbered from [1] on has carried [0] bytes to the target
        self._pause_after: tuple[int, int] | None = None
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._mode = FORWARD  # for new connections: FORWARD, CUT/REFUSE, BLACKHOLE, LOSE_ACKS
        self._lock = threading.Lock()
        self._connections: list[_Connection] = []
        self._stats = ProxyStats()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="fault-proxy", daemon=True)

    # ------------------------------------------------------------------ control
    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()
            connection.thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def cut(self, *, reset: bool = False) -> int:
        """Close every open connection both ways; refuse new ones until `heal()`. Returns how many were open."""
        with self._lock:
            self._mode = CUT
            connections = list(self._connections)
        for connection in connections:
            connection.close(reset=reset)
        return len(connections)

    def half_open(self, *, new: str = REFUSE) -> int:
        """Silence every open connection (bytes dropped both ways, sockets left open).
        New connections: REFUSE (closed at once) or BLACKHOLE (accepted, then silent)."""
        assert new in (REFUSE, BLACKHOLE)
        with self._lock:
            self._mode = new
            connections = list(self._connections)
        for connection in connections:
            connection.set_mode(BLACKHOLE)
        return len(connections)

    def lose_acks(self) -> None:
        """Broker -> agent PUBACKs and PUBLISHes are dropped, on open and new connections."""
        with self._lock:
            self._mode = LOSE_ACKS
            connections = list(self._connections)
        for connection in connections:
            connection.set_mode(LOSE_ACKS)

    def heal(self) -> None:
        with self._lock:
            self._mode = FORWARD
            connections = list(self._connections)
        for connection in connections:
            connection.set_mode(FORWARD)  # half-open ones stay silent

    def pause(self) -> None:
        """Stall the link both ways: bytes wait in the proxy, connections stay open."""
        with self._lock:
            self._paused.set()

    def pause_after(self, to_target: int) -> None:
        """Pause as soon as a connection opened from now on has carried `to_target` bytes to the
        target (the rest of its bytes wait): a job stalled mid-way, at a known point. Connections
        already open (an earlier job still draining) are not counted."""
        with self._lock:
            self._pause_after = (to_target, self._stats.accepted + 1)

    def resume(self) -> None:
        """Bytes flow again (a `pause_after` armed meanwhile stays armed)."""
        with self._lock:
            self._paused.clear()

    def wait_paused(self, timeout_s: float) -> bool:
        return self._paused.wait(timeout_s)

    def _may_send(self, direction: str, wanted: int, connection: _Connection) -> int:
        """How many bytes one connection may forward now in `direction` ("up": to the target)."""
        with self._lock:
            if self._paused.is_set():
                return 0
            threshold = None
            if direction == "up" and self._pause_after is not None and connection.number >= self._pause_after[1]:
                threshold = self._pause_after[0]
                wanted = min(wanted, max(threshold - connection.carried_to_target, 0))
            granted = wanted if self._throttles is None or not wanted else self._throttles[direction].take(wanted)
            if threshold is not None and connection.carried_to_target + granted >= threshold:
                self._pause_after = None
                self._paused.set()  # this connection's share below still goes
            return granted

    # ------------------------------------------------------------------ status
    @property
    def stats(self) -> ProxyStats:
        with self._lock:
            return ProxyStats(**vars(self._stats))

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + value)

    def _forget(self, connection: _Connection) -> None:
        with self._lock:
            if connection in self._connections:
                self._connections.remove(connection)

    # ------------------------------------------------------------------ accepting
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._stats.accepted += 1
                number = self._stats.accepted
                mode = self._mode
            if mode in (CUT, REFUSE):
                self._count(refused=1)
                if mode == REFUSE:
                    _reset_on_close(client)
                client.close()
                continue
            upstream = None
            if mode != BLACKHOLE:
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    self._count(refused=1)
                    client.close()  # the broker is down: the agent sees its connection fail
                    continue
                upstream.settimeout(None)
                upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._count(forwarded=1)
            connection = _Connection(self, client, upstream, mode, number)
            with self._lock:
                now = self._mode  # cut() or half_open() may have come while we connected
                if now != mode and now not in (CUT, REFUSE):
                    connection.set_mode(now)
                if self._stopping.is_set() or now in (CUT, REFUSE):
                    connection.close()
                    continue
                self._connections.append(connection)
            connection.thread.start()
