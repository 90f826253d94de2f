"""HTTP+JSON over pinned mutual TLS to the CAS (aiohttp), with the failure mapping the
kiosk relies on: unreachable/slow/5xx -> CasUnavailable, wrong key -> PinMismatch,
junk or oversized -> AnswerMalformed, 4xx -> CasRefused. Nothing else escapes.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any, Callable

import aiohttp

from atm.cas.errors import AnswerMalformed, AnswerTimeout, PinMismatch
from atm.cas.interface import CasRefused, CasUnavailable
from atm.cas.tls import PinnedServerRejected, pinned_client_context
from atm.cas.wire import MAX_ANSWER_BYTES, PROTOCOL_HEADER, PROTOCOL_VERSION, decode_answer


class CasTransport:
    def __init__(self, base_url: str, pins: list[str] | tuple[str, ...], *, cert_path: Path | None = None,
                 key_path: Path | None = None, kiosk_id: str = "", timeout_s: float = 10.0,
                 max_answer_bytes: int = MAX_ANSWER_BYTES,
                 on_pin: Callable[[str, bool], None] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.kiosk_id = kiosk_id
        self.timeout_s = timeout_s
        self.max_answer_bytes = max_answer_bytes
        self.last_seen_pin: str | None = None
        self.last_pin_ok: bool | None = None
        self._on_pin = on_pin
        self._ctx = pinned_client_context(pins, cert_path=cert_path, key_path=key_path, observer=self._observe)
        self._session: aiohttp.ClientSession | None = None

    def _observe(self, seen: str, ok: bool) -> None:
        self.last_seen_pin, self.last_pin_ok = seen, ok
        if self._on_pin is not None:
            self._on_pin(seen, ok)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ctx, limit=4, force_close=False)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)}, trust_env=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _read_body(self, stream: aiohttp.StreamReader, what: str) -> bytes:
        """The whole body, however many TLS records and pauses it comes in, up to the
        size limit; the session's timeout bounds the wait. (One read() returns only
        what has arrived so far, so an honest answer split in two was judged half.)"""
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await stream.read(self.max_answer_bytes + 1 - size)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > self.max_answer_bytes:
                raise AnswerMalformed(f"CAS answer to {what}: more than {self.max_answer_bytes} bytes")

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        """One request; the decoded JSON answer or a typed CasError."""
        session = self._ensure_session()
        url = self.base_url + path
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        headers = {"Content-Type": "application/json"} if data is not None else None
        what = f"{method} {path}"
        try:
            # No redirects: an answer must come from the pinned server itself, and a 307 would
            # carry the request body somewhere else.
            async with session.request(method, url, data=data, headers=headers, allow_redirects=False) as resp:
                declared = resp.content_length
                if declared is not None and declared > self.max_answer_bytes:
                    raise AnswerMalformed(f"CAS answer to {what}: {declared} bytes announced, limit {self.max_answer_bytes}")
                raw = await self._read_body(resp.content, what)
                status = resp.status
        except aiohttp.ClientConnectorCertificateError as exc:
            if isinstance(exc.certificate_error, PinnedServerRejected):
                raise PinMismatch(f"{self.base_url}: server key {exc.certificate_error.seen_pin} is not the pinned "
                                  f"CAS key; nothing was sent") from None
            raise CasUnavailable(f"{self.base_url}: TLS certificate problem ({exc.certificate_error})") from None
        except asyncio.TimeoutError:
            raise AnswerTimeout(f"{self.base_url}: {what} got no answer within {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            raise CasUnavailable(f"{self.base_url}: {what} failed ({type(exc).__name__}: {exc})") from None
        if status >= 500 or status in (408, 429):
            raise CasUnavailable(f"{self.base_url}: {what} answered HTTP {status}; will retry")
        if status >= 400:
            try:
                answer = decode_answer(raw, what) if raw else None
            except AnswerMalformed:
                answer = None
            reason = answer.get("error") if isinstance(answer, dict) else None
            reason_text = reason[:200] if isinstance(reason, str) else "no reason given"
            raise CasRefused(f"CAS refused {what}: HTTP {status}: {reason_text}")
        answer = decode_answer(raw, what) if raw else None
        if status != 200 or answer is None:
            raise AnswerMalformed(f"CAS answer to {what}: HTTP {status} with {'no' if answer is None else 'a'} body; expected 200 with JSON")
        return answer
