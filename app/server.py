"""How uvicorn serves the service: the limits that keep slow or oversized clients from holding it.

`app/api/request_guard.py` bounds what the *app* reads (bodies, their pace, header size). Some
clients never get that far: a connection that sends its request line and headers a byte at a time
(slowloris), or sends nothing at all, is held by uvicorn forever, since its only timer (keep-alive)
is armed after a response and cancelled by any byte; and uvicorn's httptools protocol buffers a head
of any size before the app sees it. This module closes those gaps at the server:

- :class:`GuardedHttpToolsProtocol`, uvicorn's httptools protocol plus a header-read timeout, a bound
  on the head's bytes and on its number of header lines (431, then the connection is closed);
- :func:`run`, ``uvicorn.run`` with that protocol and explicit keep-alive, concurrency, backlog and
  graceful-shutdown settings. ``zoom-hubspot serve`` runs the app and the demo through it; the
  Dockerfile and docker-compose.yml pass the same values on uvicorn's command line.

Why httptools and not h11 (whose ``h11_max_incomplete_event_size`` bounds the head by itself): h11
parses in pure Python. Parsing one typical Zoom webhook request and writing its answer costs ~150 µs
with h11 against ~3 µs for httptools' parser (measured with uvicorn 0.55, h11 0.16, httptools 0.9),
which at the ~2,000 webhooks/s of bench/ingest.py would be a quarter of the time budget per request.
The bounds h11 would give are a few lines here.

Checked against uvicorn 0.55.0's ``protocols/http/httptools_impl.py``: the hooks used are the parser
callbacks (``on_message_begin``, ``on_header``, ``on_headers_complete``, ``on_message_complete``),
``data_received``, ``on_response_complete``, ``connection_made``/``connection_lost`` and
``send_400_response``, which uvicorn calls when the parser fails (also when a callback raises).
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.config import Settings

# The request guard answers 431 above 16 KiB of header names and values; the raw head also holds the
# request line, ": " and CRLF per line. This bound is larger, so the guard keeps the last word on what
# it accepts and this one only stops what would never pass it, before it is buffered.
MAX_HEAD_BYTES = 32 * 1024
# Header fields per request (nginx and Apache allow about 100). The guard bounds their bytes, not
# their count, and every line costs a parse and a tuple in the ASGI scope.
MAX_HEADER_LINES = 100
# Idle time allowed on a keep-alive connection between requests (uvicorn's default, made explicit).
KEEP_ALIVE_S = 5
# Connections the kernel queues before uvicorn accepts them (also capped by net.core.somaxconn):
# a burst waits in the queue instead of being refused.
BACKLOG = 1024

_REFUSAL_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
)


@functools.cache
def header_timeout_s() -> float:
    """`HTTP_HEADER_TIMEOUT_S`, read once per process: with ``--workers`` each uvicorn process imports
    this module afresh, so the value comes from the environment, not from the parent's objects."""
    return Settings().http_header_timeout_s


class _HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing; uvicorn then calls ``send_400_response``."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with limits on how a request's head arrives.

    - Header-read timeout: a request's headers must be complete within ``header_timeout_s()`` of the
      connection's start or of the previous response, else the connection is closed (no response:
      the client is not reading one). A request whose head is complete is the app's business (the
      request guard times out stalled bodies).
    - More than ``MAX_HEAD_BYTES`` received while a head is incomplete, or more than
      ``MAX_HEADER_LINES`` header fields: 431 and the connection is closed, before the app is called.
    - ``limit_concurrency`` bounds the requests being *run* (503 above it), not open connections:
      uvicorn counts both, so 500 idle or slowloris connections made it answer 503 to everyone
      (bench/flood.py). A connection without a running request holds no body and is closed by the
      header or keep-alive timeout; the requests that run are what holds memory.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._head_timeout_s = header_timeout_s()
        self._head_timer: asyncio.TimerHandle | None = None
        # True while the next request's head is (or may be) arriving: from the connection's start and
        # from the end of each request's body, to the end of the next head.
        self._head_pending = True
        self._head_bytes = 0
        self._heads_read = 0
        self._header_lines = 0
        self._refusal: bytes | None = None
        # Taken from uvicorn's check (which also counts connections) into ours (running requests only).
        self._max_running, self.limit_concurrency = config.limit_concurrency, None

    # --- the header-read timer --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next head's time starts now. If a pipelined request was already read and started by
        # super(), the timer finds it running and leaves the connection alone; its own response re-arms.
        if not self.transport.is_closing():
            self._arm_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self._head_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        # Close only when no request is being served: either no head arrived in time, or the client is
        # still sending the body of a request that was already answered (its bytes are discarded).
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    # --- head size and header count ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        pending_before, heads_before = self._head_pending, self._heads_read
        super().data_received(data)
        if not self._head_pending or self.transport.is_closing():
            return
        if pending_before and heads_before == self._heads_read:
            # The whole chunk belongs to the head still being read. A chunk that also ended an earlier
            # request (pipelining) is not counted: the bound then allows one more read (<= 256 KiB).
            self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refuse(f"request head larger than {MAX_HEAD_BYTES} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_lines = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_lines += 1
        if self._header_lines > MAX_HEADER_LINES:
            # Raising stops the parser before on_headers_complete starts the app.
            self._refusal = f"more than {MAX_HEADER_LINES} header lines".encode()
            raise _HeadRefused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()
        self._head_pending = False
        self._head_bytes = 0
        self._heads_read += 1
        if self._max_running is None or len(self.tasks) < self._max_running:
            super().on_headers_complete()
            return
        # super() starts (or queues) the request with self.app: uvicorn's 503 app for this one only.
        app, self.app = self.app, service_unavailable
        try:
            super().on_headers_complete()
        finally:
            self.app = app

    def on_message_complete(self) -> None:
        self._head_pending = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._refusal is None:
            super().send_400_response(msg)
        else:
            self._refuse(self._refusal.decode())

    def _refuse(self, reason: str) -> None:
        """431 with ``connection: close``, then close: the rest of the head is never read."""
        self._cancel_head_timer()
        body = reason.encode()
        self.transport.write(_REFUSAL_431 + b"content-length: %d\r\n\r\n" % len(body) + body)
        self.transport.close()


def run(app: str, *, host: str, port: int, workers: int = 1, factory: bool = False) -> None:
    """``uvicorn.run`` for ``app`` (an import string) with the service's protocol and limits."""
    settings = Settings()
    uvicorn.run(
        app,
        factory=factory,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        http=GuardedHttpToolsProtocol,
        timeout_keep_alive=KEEP_ALIVE_S,
        # Above this many running requests new ones get 503 at once (GuardedHttpToolsProtocol), so a
        # flood cannot make the process hold an unbounded number of bodies (each up to 1 MiB).
        limit_concurrency=settings.http_limit_concurrency,
        backlog=BACKLOG,
        # On SIGTERM requests still running after this long are cancelled, so a stalled client cannot
        # hold a deployment's stop (then the app's shutdown runs).
        timeout_graceful_shutdown=settings.http_shutdown_timeout_s,
    )
