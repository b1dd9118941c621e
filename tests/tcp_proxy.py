"""A TCP proxy a test controls, to put between the service and PostgreSQL and break the link on purpose.

Modes (:meth:`TcpProxy.set_mode`, callable from any thread):

* ``forward``: bytes flow both ways.
* ``refuse``: the database is gone. The listening socket is closed (new connections get
  ECONNREFUSED) and every open connection is reset (RST on both sides), as when the server host
  reboots or the database process dies.
* ``blackhole``: the database hangs. Connections are accepted and kept, but nothing is forwarded
  in either direction: what a client sends waits in the proxy, and a new connection is not connected
  upstream. This is the nastier case: nothing fails, every call simply never returns unless the
  client has its own timeout. TCP keepalives do not help either, since the proxy's kernel answers
  them. Going back to ``forward`` lets the held bytes through, as when a stalled server or a
  partitioned network comes back (TCP retransmits whatever was held).

The proxy runs its own event loop in a daemon thread, so it works from synchronous tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["forward", "refuse", "blackhole"]
_CHUNK = 64 * 1024


@dataclass(eq=False)
class _Link:
    """One client connection and, once forwarding, its upstream connection."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    handler: asyncio.Task[None] | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with RST instead of FIN: the peer sees "connection reset", not a polite end."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """``TcpProxy(target_port).start()`` listens on ``127.0.0.1:<port>`` and forwards to the target."""

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.listen_host = listen_host
        self.port = 0
        self.mode: Mode = "forward"
        self.accepted = 0  # connections accepted so far (all modes)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None  # set while forwarding

    # ---- control (any thread) -------------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; returns once the switch is done (listener closed or open, links reset)."""
        self._call(self._set_mode(mode))

    def open_connections(self) -> int:
        return len(self._links)

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, coro: object) -> None:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        future.result(timeout=10)

    # ---- inside the proxy's loop ----------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        # SO_REUSEADDR: the same port is bound again after `refuse`, while old connections on it
        # may still be in TIME_WAIT.
        self._server = await asyncio.start_server(
            self._accept, self.listen_host, self.port, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _set_mode(self, mode: Mode) -> None:
        assert self._flowing is not None
        self.mode = mode
        if mode == "refuse":
            self._flowing.clear()
            await self._stop_listening()
            self._reset_all()
            return
        if self._server is None:
            await self._listen()
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _reset_all(self) -> list[asyncio.Task[None]]:
        handlers: list[asyncio.Task[None]] = []
        for link in list(self._links):
            _reset(link.client)
            _reset(link.upstream)
            for task in (*link.tasks, link.handler):
                if task is not None:
                    task.cancel()
            if link.handler is not None:
                handlers.append(link.handler)
        self._links.clear()
        return handlers

    async def _shutdown(self) -> None:
        await self._stop_listening()
        handlers = self._reset_all()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.accepted += 1
        link = _Link(client=writer, handler=asyncio.current_task())  # type: ignore[arg-type]
        self._links.add(link)
        try:
            # In blackhole mode the connection is held here: accepted, but not connected upstream.
            await self._flowing.wait()
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                _reset(writer)
                return
            link.upstream = up_writer
            if link not in self._links:  # reset while connecting
                _reset(up_writer)
                return
            tasks = {
                asyncio.create_task(self._pump(reader, up_writer)),
                asyncio.create_task(self._pump(up_reader, writer)),
            }
            link.tasks |= tasks
            # Either direction ending ends the link (the other side is closed by the pump's finally).
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            self._links.discard(link)
            for task in link.tasks:
                task.cancel()
            for side in (writer, link.upstream):
                if side is not None and not side.transport.is_closing():
                    side.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        with contextlib.suppress(ConnectionError, OSError, asyncio.CancelledError):
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                # Blackhole: the chunk waits here and nothing more is read, so the sender's data
                # piles up in kernel buffers, as behind a stalled server.
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        if not writer.transport.is_closing():
            writer.close()


@contextlib.contextmanager
def tcp_proxy(target_host: str, target_port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_host, target_port).start()
    try:
        yield proxy
    finally:
        proxy.close()
