"""A TCP proxy on loopback that makes a data source misbehave: it passes traffic through
(`pass`), swallows it so a connection hangs without an answer (`hang`: a black hole that
accepts), or passes it through and cuts each connection after a short random time (`cut`).
The mode can change while the proxy runs; connections open now are counted, so a test can
tell that a query is in flight (a process blocked on the black hole)."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
from typing import Literal

Mode = Literal["pass", "hang", "cut"]
CHUNK = 65536


class TcpProxy:
    def __init__(
        self, port: int, upstream_port: int, mode: Mode = "pass", *, seed: int = 7
    ) -> None:
        self.port = port
        self.upstream_port = upstream_port
        self.mode: Mode = mode
        self.cut_after = (0.2, 1.5)  # seconds a `cut` connection lives, at random between
        self.accepted = 0
        self.cuts = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._server.settimeout(0.2)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._open)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._server.close()
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            _close(sock)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with self._lock:
                self._open.add(client)
            mode = self.mode
            target = self._black_hole if mode == "hang" else self._forward
            threading.Thread(target=target, args=(client, mode), daemon=True).start()

    def _black_hole(self, client: socket.socket, _: Mode) -> None:
        """Read and drop everything until the client gives up (or the proxy stops)."""
        try:
            client.settimeout(0.5)
            while not self._stopping.is_set():
                try:
                    if not client.recv(CHUNK):
                        return
                except TimeoutError:
                    continue
        except OSError:
            return
        finally:
            self._forget(client)

    def _forward(self, client: socket.socket, mode: Mode) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=5)
        except OSError:
            self._forget(client)
            return
        upstream.settimeout(None)
        done = threading.Event()
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pump, args=(source, sink, done), daemon=True).start()
        if mode == "cut":
            with self._lock:
                lifetime = self._random.uniform(*self.cut_after)
            if not done.wait(lifetime) and not self._stopping.is_set():
                self.cuts += 1
        else:
            while not done.wait(0.5) and not self._stopping.is_set():
                pass
        _close(upstream)
        self._forget(client)

    def _forget(self, client: socket.socket) -> None:
        _close(client)
        with self._lock:
            self._open.discard(client)


def _pump(source: socket.socket, sink: socket.socket, done: threading.Event) -> None:
    try:
        while True:
            data = source.recv(CHUNK)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        done.set()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
