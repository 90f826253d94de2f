"""A hand-written HTTPS server on 127.0.0.1 for the rogue-CAS tests: it presents a
given certificate and answers each request with whatever bytes a test writes, in as
many pieces and with as many pauses as the test wants (what aiohttp's server cannot be
made to do). It stops when its `async with` block ends; every read has a deadline.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Awaitable, Callable

READ_DEADLINE_S = 5.0
MAX_REQUEST_BYTES = 256 * 1024

# (method, path, body) -> the answer as a list of (bytes, pause before the next piece)
Responder = Callable[[str, str, bytes], Awaitable[list[tuple[bytes, float]]]]


def http_answer(body: bytes, *, status: str = "200 OK", content_length: bool = True) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", "X-ATM-Protocol: 1"]
    if content_length:
        head.append(f"Content-Length: {len(body)}")
    head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body


class RogueServer:
    def __init__(self, cert: Path, key: Path, responder: Responder) -> None:
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(cert, key)
        self._ctx.verify_mode = ssl.CERT_NONE  # the kiosk's client certificate is not judged here
        self._responder = responder
        self._server: asyncio.Server | None = None
        self.requests: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"https://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> "RogueServer":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self._ctx)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_DEADLINE_S)
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = min(int(value.strip()), MAX_REQUEST_BYTES)
            body = await asyncio.wait_for(reader.readexactly(length), READ_DEADLINE_S) if length else b""
            self.requests.append((method, path))
            for piece, pause in await self._responder(method, path, body):
                writer.write(piece)
                await writer.drain()
                if pause:
                    await asyncio.sleep(pause)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError):
            pass
        finally:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), READ_DEADLINE_S)
            except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
                pass
