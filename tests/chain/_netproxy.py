"""A TCP proxy on loopback between node processes whose links can be cut and healed.

Every node dials each peer through the proxy: one listening port per directed link (dialer, peer)
forwards to the peer's own P2P port, so a test points each node's peer addresses at
`NetProxy.add_link(...)` and can then partition any set of nodes from the rest.

`cut(a, b)` severs the pair in both directions the way a partition does to TCP: live connections
are aborted (bytes in flight are lost), and connections opened while the link is down are
accepted but never forwarded, so the dialer's handshake times out as across a dead route.
`heal(a, b)` closes those black-holed connections, so the dialer redials at once and gets
through. With `capture_bytes`, the proxy keeps the first bytes each connection carries each way
(`captures`), so a test can look at what crosses the wire. Everything runs on one asyncio loop
in a daemon thread; connections per link and bytes per read are bounded, and only 127.0.0.1 is
ever bound or dialled.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

HOST = "127.0.0.1"
CHUNK_BYTES = 64 * 1024
MAX_CONNECTIONS_PER_LINK = 16
CONNECT_TIMEOUT_S = 2.0
CONTROL_TIMEOUT_S = 10.0

T = TypeVar("T")


@dataclass
class _Link:
    """One direction between two nodes: `dialer` reaches `peer` at `upstream_port`."""

    dialer: str
    peer: str
    upstream_port: int
    port: int = 0
    down: bool = False
    forwarded_bytes: int = 0
    live: set[asyncio.StreamWriter] = field(default_factory=set)
    captures: list[tuple[bytearray, bytearray]] = field(default_factory=list)
    held: set[asyncio.StreamWriter] = field(default_factory=set)
    server: asyncio.Server | None = None


class NetProxy:
    """Directed, cuttable TCP links between named nodes on loopback."""

    def __init__(self, capture_bytes: int = 0) -> None:
        self.capture_bytes = capture_bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="netproxy", daemon=True)
        self._links: dict[tuple[str, str], _Link] = {}
        self._thread.start()

    # -- control (called from the test's thread) ------------------------------------------

    def add_link(self, dialer: str, peer: str, upstream_port: int) -> int:
        """Listen for DIALER's connections to PEER; returns the port DIALER should dial."""
        link = _Link(dialer, peer, upstream_port)
        self._links[(dialer, peer)] = link
        return self._call(self._listen(link))

    def cut(self, a: str, b: str) -> None:
        """Partition A and B from each other (both directions)."""
        self._call(self._set_down([self._links[(a, b)], self._links[(b, a)]], down=True))

    def heal(self, a: str, b: str) -> None:
        self._call(self._set_down([self._links[(a, b)], self._links[(b, a)]], down=False))

    def isolate(self, group: Iterable[str]) -> None:
        """Cut every link between GROUP and the other nodes; links inside GROUP stay up."""
        inside = set(group)
        self._call(
            self._set_down(
                [k for k in self._links.values() if (k.dialer in inside) != (k.peer in inside)],
                down=True,
            )
        )

    def heal_all(self) -> None:
        self._call(self._set_down(list(self._links.values()), down=False))

    def forwarded_bytes(self, dialer: str, peer: str) -> int:
        """Bytes carried from DIALER to PEER so far (proof the nodes talk through the proxy)."""
        return self._links[(dialer, peer)].forwarded_bytes

    def captures(self, dialer: str, peer: str) -> list[tuple[bytes, bytes]]:
        """Per connection from DIALER to PEER: the first bytes (up to `capture_bytes`) the
        dialer sent, and the first the peer sent back."""
        return self._call(self._captures(self._links[(dialer, peer)]))

    async def _captures(self, link: _Link) -> list[tuple[bytes, bytes]]:
        return [(bytes(out), bytes(back)) for out, back in link.captures]

    def close(self) -> None:
        if not self._loop.is_running():
            return
        self._call(self._close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CONTROL_TIMEOUT_S)
        if not self._thread.is_alive():
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    # -- on the proxy's loop ---------------------------------------------------------------

    async def _listen(self, link: _Link) -> int:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._on_connection(link, reader, writer)

        link.server = await asyncio.start_server(accept, HOST, 0)
        link.port = int(link.server.sockets[0].getsockname()[1])
        return link.port

    async def _set_down(self, links: list[_Link], *, down: bool) -> None:
        for link in links:
            link.down = down
            # Cutting aborts what is live; healing releases what the black hole held
            for writer in list(link.live if down else link.held):
                writer.transport.abort()
            (link.live if down else link.held).clear()

    async def _close_all(self) -> None:
        for link in self._links.values():
            if link.server is not None:
                link.server.close()
            for writer in [*link.live, *link.held]:
                writer.transport.abort()

    async def _on_connection(
        self, link: _Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(link.live) + len(link.held) >= MAX_CONNECTIONS_PER_LINK:
            writer.transport.abort()
            return
        if link.down:
            link.held.add(writer)  # never read, never answered: a dead route
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, link.upstream_port), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        if link.down:  # cut while we were connecting
            up_writer.transport.abort()
            link.held.add(writer)
            return
        link.live.update((writer, up_writer))
        out, back = bytearray(), bytearray()
        if self.capture_bytes:
            link.captures.append((out, back))
        pumps = [
            asyncio.ensure_future(self._pump(link, reader, up_writer, out, count=True)),
            asyncio.ensure_future(self._pump(link, up_reader, writer, back, count=False)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for end in (writer, up_writer):
                link.live.discard(end)
                end.transport.abort()

    async def _pump(
        self,
        link: _Link,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        capture: bytearray,
        *,
        count: bool,
    ) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(CHUNK_BYTES):
                if len(capture) < self.capture_bytes:
                    capture += data[: self.capture_bytes - len(capture)]
                sink.write(data)
                await sink.drain()
                if count:
                    link.forwarded_bytes += len(data)
