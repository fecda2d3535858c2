"""A real HTTP/1.1 server on 127.0.0.1 that answers too slowly or too much (issue 13, finding 7).

A plain socket server, so the bytes on the wire are exactly what a test asks for (http.server would
buffer and add headers). The message format is RFC 9112 (HTTP/1.1): a status line, header fields,
an empty line, then a body delimited by ``Content-Length`` or by closing the connection (section 6.3).
Modes:

* ``"headers"``: the status line and then an endless header field, one byte per ``interval``
  (each read of the client's socket gets a byte in time, so a per-read timeout never fires);
* ``"body"``: complete headers with a large ``Content-Length``, then the body one byte per ``interval``;
* ``"large"``: a complete, fast answer whose body is ``size`` bytes; ``declare`` says whether
  ``Content-Length`` announces it (else the body ends when the connection closes).
"""

from __future__ import annotations

import socket
import threading
import time
from typing import List


class TrickleServer:
    def __init__(self, mode: str, *, interval: float = 1.0, size: int = 0, declare: bool = True,
                 content_type: str = "application/json", tls: bool = False) -> None:
        self.mode, self.interval, self.size, self.declare, self.tls = mode, interval, size, declare, tls
        self.content_type = content_type
        self.requests: List[bytes] = []
        self.closed_by_client = threading.Event()
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._threads: List[threading.Thread] = []

    def __enter__(self) -> "TrickleServer":
        thread = threading.Thread(target=self._serve, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._answer, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _read_request(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        self.requests.append(head + b"\r\n\r\n" + body)

    def _drip(self, conn: socket.socket, data: bytes) -> None:
        for i in range(len(data)):
            if self._stop.is_set():
                return
            conn.sendall(data[i:i + 1])
            time.sleep(self.interval)

    def _answer(self, conn: socket.socket) -> None:
        try:
            if self.tls:  # the kube world's throwaway CA (tests/support/kubeworld/tls.py)
                from .kubeworld import tls

                conn.settimeout(5)
                conn = tls.server_context().wrap_socket(conn, server_side=True)
            with conn:
                self._read_request(conn)
                if self.mode == "headers":
                    self._drip(conn, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000)
                elif self.mode == "body":
                    conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
                                 "Content-Length: 50000\r\n\r\n".encode())
                    self._drip(conn, b"{" + b" " * 49_999)
                elif self.mode == "large":
                    head = f"HTTP/1.1 200 OK\r\nContent-Type: {self.content_type}\r\n"
                    head += f"Content-Length: {self.size}\r\n" if self.declare else "Connection: close\r\n"
                    conn.sendall(head.encode() + b"\r\n")
                    block = b" " * 65536
                    sent = 0
                    while sent < self.size and not self._stop.is_set():
                        piece = block[: min(len(block), self.size - sent)]
                        conn.sendall(piece)
                        sent += len(piece)
        except OSError:  # the client cut the connection: what a bounded client does
            self.closed_by_client.set()


class TrickleProcess:
    """A :class:`TrickleServer` in a process of its own, so a busy test process (a whole Kubernetes
    test world on its threads) cannot slow the trickle down to a pace that read timeouts catch."""

    def __init__(self, mode: str, *, interval: float = 1.0) -> None:
        self.mode, self.interval = mode, interval

    def __enter__(self) -> "TrickleProcess":
        import subprocess
        import sys
        from pathlib import Path

        code = ("import sys, time; from support.trickle import TrickleServer\n"
                f"with TrickleServer({self.mode!r}, interval={self.interval!r}) as s:\n"
                "    print(s.url, flush=True)\n    sys.stdin.read()\n")
        self._proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      text=True, cwd=str(Path(__file__).resolve().parent.parent))
        self.url = self._proc.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(10)
        except Exception:  # noqa: BLE001 - a server that does not stop is killed
            self._proc.kill()
            self._proc.wait(10)
