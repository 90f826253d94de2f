"""A Coin ATM Server (CAS) simulator speaking protocol 1 (docs/cas-protocol.md) over
mutual TLS on 127.0.0.1, with a control surface for tests and the demo: rates,
bundles, commands, simulated chain payments for sell invoices, an outage switch,
and hostile modes that play a compromised or impersonated server, switchable at run time.

It signs nothing with the operator key: like a real CAS it only stores and serves
what the operator's offline tool signed. The rogue key here is the attacker's.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web
from embit import bip32
from embit.networks import NETWORKS

from atm.cas.signing import generate_operator_key, sign_payload
from atm.cas.tls import make_key_and_certificate, spki_pin, spki_pin_of_pem
from atm.cas.wallet import deposit_address
from atm.cas.payment_proof import PaymentEvidence
from atm.cas.wire import PROTOCOL_HEADER, PROTOCOL_VERSION
from simulators.cas.chain import EASY_BITS, SimChain

HOSTILE_MODES = (
    "other-certificate",      # a different key answers (impersonation / man in the middle)
    "unsigned-bundle",        # a newer bundle without a signature
    "foreign-signed-bundle",  # a newer bundle signed by a key that is not the operator's
    "old-bundle",             # an older, once-valid bundle (rollback / replay)
    "foreign-sell-address",   # sell deposit addresses from the attacker's wallet
    "unsigned-activate",      # an "activate" command without the operator's signature
    "oversized",              # answers far larger than any real one
    "slow",                   # answers later than any client waits
    "malformed",              # answers that are not the protocol
    "redirect",               # answers 307 to another server (redirect_to), which would get the body
    "surrogate-bundle",       # a newer, signed-looking bundle holding a lone UTF-16 surrogate (JSON "\\ud800")
    "surrogate-command",      # a signed-looking "activate" holding a lone UTF-16 surrogate
    "absurd-rate",            # every rate 1E-30: a price no currency has, which once overflowed the journal
    "split-answers",          # honest answers sent in two TLS records 300 ms apart (a slow link, not an attack)
    # Sell payments claimed, not proven (the kiosk must refuse each and pay nothing):
    "claim-without-tx",       # every invoice "confirmed" at its full amount, with no transaction at all
    "pay-other-address",      # a real, mined transaction for the full amount, paying the attacker's address
    "wrong-merkle",           # a made-up transaction paying the invoice, claimed in a block it is not in
    "weak-headers",           # a made-up transaction in a private branch of regtest-work headers (EASY_BITS)
)
SPLIT_PAUSE_S = 0.3
LONE_SURROGATE = json.loads('"\\ud800"')
OVERSIZED_BYTES = 2 * 1024 * 1024
KIOSK: web.RequestKey["KioskRecord | None"] = web.RequestKey("kiosk", object)  # type: ignore[arg-type]
BODY: web.RequestKey[Any] = web.RequestKey("body", object)


@dataclass
class Invoice:
    id: str
    kiosk_id: str
    address: str
    index: int
    sats: int
    fiat_minor: int
    currency: str
    expires_at: int
    received_sats: int = 0
    confirmations: int = 0
    late: bool = False
    txs: list[Any] = field(default_factory=list)     # chain transactions paying the address, in order

    def state(self, now: float) -> str:
        if self.received_sats == 0:
            return "expired" if now > self.expires_at else "unpaid"
        if self.late:
            return "late"
        if self.received_sats < self.sats:
            return "underpaid"
        if self.received_sats > self.sats:
            return "overpaid"
        return "confirmed" if self.confirmations > 0 else "seen"


@dataclass
class KioskRecord:
    kiosk_id: str
    cert_pin: str
    reported_config_version: int | None = None
    last_poll: float | None = None
    remote_state: str = "active"
    outbox: int = 0


@dataclass
class _Hostile:
    modes: set[str] = field(default_factory=set)
    slow_s: float = 30.0


class CasSimulator:
    """The simulated CAS. `await start()` binds 127.0.0.1 on a free port (or `port`)."""

    def __init__(self, workdir: Path, *, port: int = 0) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port = port
        key, cert = make_key_and_certificate("simulated CAS", san_ip="127.0.0.1")
        evil_key, evil_cert = make_key_and_certificate("simulated CAS", san_ip="127.0.0.1")
        for name, data in (("cas.key", key), ("cas.crt", cert), ("other.key", evil_key), ("other.crt", evil_cert)):
            (self.workdir / name).write_bytes(data)
        self.pin = spki_pin_of_pem(cert)
        self.other_pin = spki_pin_of_pem(evil_cert)
        self._ctx = self._server_context("cas")
        self._other_ctx = self._server_context("other")
        self._ctx.sni_callback = self._choose_certificate
        self.hostile = _Hostile()
        self.rogue_key = generate_operator_key()
        self.rogue_xpub = (bip32.HDKey.from_seed(os.urandom(32), version=NETWORKS["regtest"]["xprv"])
                           .derive("m/84h/1h/0h").to_public().to_string(version=NETWORKS["regtest"]["zpub"]))
        self.pairing_tokens: dict[str, str] = {}
        self.kiosks: dict[str, KioskRecord] = {}
        self.bundles: list[dict[str, Any]] = []
        self.rates: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}
        self.command_acks: list[dict[str, Any]] = []
        self.drop_answers: set[str] = set()
        self._malformed_count = 0
        self.redirect_to = "http://127.0.0.1:9/"
        self.request_log: list[dict[str, Any]] = []
        self.sends: dict[str, dict[str, Any]] = {}
        self.send_requests: Counter[str] = Counter()
        self.transactions: dict[str, dict[str, Any]] = {}
        self.transaction_submissions: Counter[str] = Counter()
        self.events: dict[str, dict[str, Any]] = {}
        self.alert_log: dict[str, dict[str, Any]] = {}   # alert id -> alert, in arrival order
        self.alert_submissions: Counter[str] = Counter()
        self.invoices: dict[str, Invoice] = {}
        # Sell payments are real transactions on a regtest-style chain whose first block
        # the operator signs as the checkpoint (see SimulatedOperator).
        self.chain = SimChain()
        self.invoice_ttl_s = 900
        self._hostile_evidence: dict[tuple[str, str], PaymentEvidence] = {}
        self._next_index = 0
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    # ---- TLS ------------------------------------------------------------------------

    def _server_context(self, name: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.workdir / f"{name}.crt", self.workdir / f"{name}.key")
        # Optional: pairing arrives without a client certificate; every other route
        # checks that the certificate is one registered at pairing.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def _choose_certificate(self, sslobj: ssl.SSLObject, server_name: str | None, ctx: ssl.SSLContext) -> None:
        if "other-certificate" in self.hostile.modes:
            sslobj.context = self._other_ctx

    # ---- lifecycle ------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 * 1024 * 1024)
        app.router.add_post("/v1/pair", self._pair)
        app.router.add_post("/v1/poll", self._poll)
        app.router.add_get("/v1/config", self._config)
        app.router.add_post("/v1/sends", self._send)
        app.router.add_post("/v1/transactions", self._transactions)
        app.router.add_post("/v1/events", self._events)
        app.router.add_post("/v1/alerts", self._alerts)
        app.router.add_get("/v1/alerts", self._list_alerts)
        app.router.add_post("/v1/sell-invoices", self._sell_invoice)
        app.router.add_get("/v1/sell-invoices/{invoice_id}", self._sell_invoice_status)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        # Bound here rather than by aiohttp so the port is known (port 0 = a free one)
        # and an outage can end on the same port.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock, ssl_context=self._ctx)
        await self._site.start()

    async def go_down(self) -> None:
        """An outage: stop listening and drop open connections; all state is kept."""
        if self._site is not None:
            await self._site.stop()
            self._site = None
        self._drop_connections()

    def _drop_connections(self) -> None:
        # Open keep-alive connections would otherwise outlive an outage or a switch of
        # certificate, and the client would never make the new handshake under test.
        if self._runner is not None and self._runner.server is not None:
            for handler in self._runner.server.connections:
                handler.force_close()

    async def come_back(self) -> None:
        """End an outage: listen again on the same port."""
        if self._site is None:
            await self._listen()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    async def __aenter__(self) -> "CasSimulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- control surface ------------------------------------------------------------

    def set_hostile(self, *modes: str, slow_s: float | None = None) -> None:
        unknown = set(modes) - set(HOSTILE_MODES)
        if unknown:
            raise ValueError(f"unknown hostile modes {sorted(unknown)}; known: {HOSTILE_MODES}")
        if ("other-certificate" in modes) != ("other-certificate" in self.hostile.modes):
            self._drop_connections()
        self.hostile.modes = set(modes)
        if slow_s is not None:
            self.hostile.slow_s = slow_s

    def clear_hostile(self) -> None:
        self.set_hostile()

    def expect_pairing(self, token: str, kiosk_id: str) -> None:
        """Register a one-time pairing token, as the operator does in the CAS admin."""
        self.pairing_tokens[token] = kiosk_id

    def publish_bundle(self, doc: dict[str, Any]) -> None:
        """Serve this operator-signed bundle from now on (the CAS never signs it)."""
        self.bundles.append(doc)

    def current_bundle(self) -> dict[str, Any] | None:
        return self.bundles[-1] if self.bundles else None

    def set_rate(self, currency: str, rate: str | Decimal) -> None:
        self.rates[currency] = str(rate)

    def queue_command(self, kiosk_id: str, doc: dict[str, Any]) -> None:
        self.commands.setdefault(kiosk_id, []).append(doc)

    def pay_invoice(self, invoice_id: str, sats: int, *, confirmations: int = 0, late: bool = False) -> Any:
        """A real transaction paying `sats` to the invoice's address, put on the simulated
        chain; with `confirmations`, that many blocks are mined on top (its own first).
        Returns the transaction."""
        invoice = self.invoices[invoice_id]
        tx = self.chain.pay(invoice.address, sats)
        invoice.txs.append(tx)
        invoice.received_sats += sats
        invoice.late = late or time.time() > invoice.expires_at
        if confirmations:
            self.chain.mine(confirmations)
        invoice.confirmations = self.chain.confirmations(invoice.txs[0])
        return tx

    def pay_late(self, invoice_id: str, sats: int, *, confirmations: int = 0) -> Any:
        """A payment that arrives after the invoice expired (the CAS says "late")."""
        return self.pay_invoice(invoice_id, sats, confirmations=confirmations, late=True)

    def confirm_invoice(self, invoice_id: str, confirmations: int) -> None:
        """Mine blocks until the invoice's first payment has `confirmations`."""
        invoice = self.invoices[invoice_id]
        if not invoice.txs:
            raise ValueError(f"sell invoice {invoice_id} has no payment to confirm")
        while self.chain.confirmations(invoice.txs[0]) < confirmations:
            self.chain.mine(1)
        invoice.confirmations = self.chain.confirmations(invoice.txs[0])

    def mine(self, count: int = 1) -> None:
        """Mine `count` blocks on the simulated chain (mempool payments go in the first)."""
        self.chain.mine(count)
        for invoice in self.invoices.values():
            if invoice.txs:
                invoice.confirmations = self.chain.confirmations(invoice.txs[0])

    def requests_to(self, path: str) -> list[dict[str, Any]]:
        return [entry for entry in self.request_log if entry["path"] == path]

    # ---- HTTP -----------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        sslobj = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = sslobj.getpeercert(binary_form=True) if sslobj is not None else None
        client_pin = spki_pin(der) if der else None
        kiosk = next((k for k in self.kiosks.values() if k.cert_pin == client_pin), None)
        body_text = (await request.read()).decode("utf-8", errors="replace")
        self.request_log.append({"method": request.method, "path": request.path, "at": time.time(),
                                 "kiosk": kiosk.kiosk_id if kiosk else None, "body": body_text})
        if request.headers.get(PROTOCOL_HEADER) != str(PROTOCOL_VERSION):
            return self._json({"error": f"protocol header {PROTOCOL_HEADER}: {PROTOCOL_VERSION} expected"}, 400)
        if request.path != "/v1/pair" and kiosk is None:
            return self._json({"error": "client certificate is not one registered at pairing"}, 401)
        request[KIOSK] = kiosk
        try:
            request[BODY] = json.loads(body_text) if body_text else {}
        except ValueError:
            return self._json({"error": "body is not JSON"}, 400)
        if not isinstance(request[BODY], dict):
            return self._json({"error": "body must be a JSON object"}, 400)
        modes = self.hostile.modes
        if "slow" in modes:
            await asyncio.sleep(self.hostile.slow_s)
        if "redirect" in modes:
            return web.Response(status=307, headers={"Location": self.redirect_to + request.path.lstrip("/")})
        if "malformed" in modes:
            # Alternate between answers that are not JSON and JSON of the wrong shape,
            # so both the decoder and the field checks are exercised.
            self._malformed_count += 1
            if self._malformed_count % 2:
                return web.Response(body=b'{"protocol": 1, "rates": {"EUR": 12.5e3', content_type="application/json")
            return self._json({"rates": "cheap", "id": 7, "txid": None, "stored": "all", "bundle": 1,
                               "address": ["x"], "state": "paid"})
        response = await handler(request)
        if request.path in self.drop_answers and request.transport is not None:
            # The work is done and kept, but the answer never reaches the kiosk, as
            # when the link or the kiosk dies mid-request.
            request.transport.abort()
            raise asyncio.CancelledError
        if "oversized" in modes and isinstance(response, web.Response) and response.body is not None:
            padded = json.loads(response.body)
            padded["padding"] = "x" * OVERSIZED_BYTES
            return self._json(padded)
        if "split-answers" in modes and isinstance(response, web.Response) and response.body is not None:
            return await self._split(request, response)
        return response

    async def _split(self, request: web.Request, response: web.Response) -> web.StreamResponse:
        # The answer a slow link delivers: its first half, a pause, then the rest; the
        # kiosk must judge the whole body, never the first record alone.
        body = bytes(response.body)  # type: ignore[arg-type]
        stream = web.StreamResponse(status=response.status, headers={
            "Content-Type": response.content_type, PROTOCOL_HEADER: str(PROTOCOL_VERSION)})
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[:len(body) // 2])
        await asyncio.sleep(SPLIT_PAUSE_S)
        await stream.write(body[len(body) // 2:])
        await stream.write_eof()
        return stream

    def _json(self, obj: dict[str, Any], status: int = 200) -> web.Response:
        if status == 200:
            obj = {"protocol": PROTOCOL_VERSION, **obj}
        return web.Response(text=json.dumps(obj), status=status, content_type="application/json",
                            headers={PROTOCOL_HEADER: str(PROTOCOL_VERSION)})

    async def _pair(self, request: web.Request) -> web.Response:
        body = request[BODY]
        token, kiosk_id, cert_pem = body.get("token"), body.get("kiosk_id"), body.get("certificate")
        if not isinstance(token, str) or self.pairing_tokens.get(token) != kiosk_id:
            return self._json({"error": "unknown or used pairing token"}, 403)
        try:
            cert_pin = spki_pin_of_pem(cert_pem.encode("ascii"))
            # Trust this self-signed client certificate for later handshakes.
            self._ctx.load_verify_locations(cadata=cert_pem)
        except (AttributeError, ValueError, ssl.SSLError):
            return self._json({"error": "certificate is not a PEM certificate"}, 400)
        del self.pairing_tokens[token]
        self.kiosks[kiosk_id] = KioskRecord(kiosk_id=kiosk_id, cert_pin=cert_pin)
        return self._json({"kiosk_id": kiosk_id})

    def _served_bundle(self) -> dict[str, Any] | None:
        modes = self.hostile.modes
        current = self.current_bundle()
        if "old-bundle" in modes and len(self.bundles) > 1:
            return self.bundles[0]
        if current is None:
            return None
        if "surrogate-bundle" in modes:
            payload = json.loads(json.dumps(current["payload"]))
            payload["version"] += 1
            payload["settings"]["currency"] += LONE_SURROGATE
            return {"payload": payload, "sig": "A" * 86}
        if "unsigned-bundle" in modes or "foreign-signed-bundle" in modes:
            # The attacker's idea of a configuration: its own wallet, no fee, huge limits.
            payload = json.loads(json.dumps(current["payload"]))
            payload["version"] += 1
            settings = payload["settings"]
            settings["max_buy_minor"] = 10**9
            if settings.get("wallet"):
                settings["wallet"]["xpub"] = self.rogue_xpub
            if "unsigned-bundle" in modes:
                return {"payload": payload}
            return sign_payload(payload, self.rogue_key)
        return current

    async def _poll(self, request: web.Request) -> web.Response:
        kiosk: KioskRecord = request[KIOSK]
        body = request[BODY]
        kiosk.last_poll = time.time()
        kiosk.reported_config_version = body.get("config_version")
        kiosk.remote_state = str(body.get("remote_state", ""))
        kiosk.outbox = body.get("outbox", 0) if isinstance(body.get("outbox"), int) else 0
        acks = body.get("ack_commands") or []
        acked = {a.get("id") for a in acks if isinstance(a, dict)}
        self.command_acks.extend(a for a in acks if isinstance(a, dict))
        queue = self.commands.get(kiosk.kiosk_id, [])
        queue[:] = [doc for doc in queue if doc.get("payload", {}).get("id") not in acked]
        commands = list(queue)
        if "unsigned-activate" in self.hostile.modes:
            commands.append({"payload": {"type": "atm-command", "kiosk_id": kiosk.kiosk_id, "name": "activate",
                                         "id": f"rogue-{time.time_ns()}", "sequence": 10**9, "args": {}}})
        if "surrogate-command" in self.hostile.modes:
            commands.append({"payload": {"type": "atm-command", "kiosk_id": kiosk.kiosk_id, "name": "activate",
                                         "id": "rogue-surrogate", "sequence": 10**9,
                                         "args": {"note": LONE_SURROGATE}},
                             "sig": "A" * 86})
        served = self._served_bundle()
        rates = dict(self.rates)
        if "absurd-rate" in self.hostile.modes:
            rates = {currency: "1E-30" for currency in rates}
        return self._json({"server_time": int(time.time()),
                           "config_version": served["payload"]["version"] if served else None,
                           "rates": rates, "texts": dict(self.texts), "commands": commands})

    async def _config(self, request: web.Request) -> web.Response:
        return self._json({"bundle": self._served_bundle()})

    async def _send(self, request: web.Request) -> web.Response:
        body = request[BODY]
        send_id, address, sats = body.get("id"), body.get("address"), body.get("sats")
        if not isinstance(send_id, str) or not isinstance(address, str) or not isinstance(sats, int) or sats <= 0:
            return self._json({"error": "send needs id, address and positive integer sats"}, 400)
        self.send_requests[send_id] += 1
        existing = self.sends.get(send_id)
        if existing is None:
            txid = hashlib.sha256(f"{send_id}|{address}|{sats}".encode()).hexdigest()
            existing = {"id": send_id, "address": address, "sats": sats, "txid": txid,
                        "kiosk": request[KIOSK].kiosk_id}
            self.sends[send_id] = existing
        elif existing["address"] != address or existing["sats"] != sats:
            return self._json({"error": f"send {send_id} already exists with another address or amount"}, 409)
        return self._json({"id": send_id, "txid": existing["txid"]})

    async def _transactions(self, request: web.Request) -> web.Response:
        items = request[BODY].get("transactions")
        if not isinstance(items, list):
            return self._json({"error": "'transactions' must be a list"}, 400)
        stored = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("version"), int):
                return self._json({"error": "each transaction needs a string id and an integer version"}, 400)
            tx_id, version = item["id"], item["version"]
            self.transaction_submissions[tx_id] += 1
            held = self.transactions.get(tx_id)
            # Versions ratchet: an older or repeated upload never replaces what is held.
            if held is None or version > held["version"]:
                held = {"version": version, "record": item.get("record"), "kiosk": request[KIOSK].kiosk_id}
                self.transactions[tx_id] = held
            stored.append({"id": tx_id, "version": held["version"]})
        return self._json({"stored": stored})

    async def _events(self, request: web.Request) -> web.Response:
        items = request[BODY].get("events")
        if not isinstance(items, list):
            return self._json({"error": "'events' must be a list"}, 400)
        stored = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                return self._json({"error": "each event needs a string id"}, 400)
            self.events.setdefault(item["id"], {**item, "kiosk": request[KIOSK].kiosk_id})
            stored.append({"id": item["id"], "version": 1})
        return self._json({"stored": stored})

    async def _alerts(self, request: web.Request) -> web.Response:
        items = request[BODY].get("alerts")
        if not isinstance(items, list):
            return self._json({"error": "'alerts' must be a list"}, 400)
        stored = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not isinstance(item.get("kind"), str):
                return self._json({"error": "each alert needs a string id and a string kind"}, 400)
            self.alert_submissions[item["id"]] += 1
            # Keyed by id: a repeated upload (lost answer, restart) is kept once.
            self.alert_log.setdefault(item["id"], {**item, "kiosk": request[KIOSK].kiosk_id})
            stored.append({"id": item["id"], "version": 1})
        return self._json({"stored": stored})

    async def _list_alerts(self, request: web.Request) -> web.Response:
        kiosk_id = request[KIOSK].kiosk_id
        return self._json({"alerts": [alert for alert in self.alert_log.values() if alert["kiosk"] == kiosk_id]})

    def alerts(self, kiosk_id: str | None = None) -> list[dict[str, Any]]:
        """Alerts the kiosks uploaded, in arrival order (each once), as the operator sees them."""
        return [alert for alert in self.alert_log.values() if kiosk_id is None or alert["kiosk"] == kiosk_id]

    async def _sell_invoice(self, request: web.Request) -> web.Response:
        body = request[BODY]
        invoice_id, sats = body.get("id"), body.get("sats")
        if not isinstance(invoice_id, str) or not isinstance(sats, int) or sats <= 0:
            return self._json({"error": "sell invoice needs id and positive integer sats"}, 400)
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            bundle = self.current_bundle()
            wallet = (bundle or {}).get("payload", {}).get("settings", {}).get("wallet")
            if not wallet:
                return self._json({"error": "no wallet configured for sells"}, 409)
            index = self._next_index
            self._next_index += 1
            xpub = self.rogue_xpub if "foreign-sell-address" in self.hostile.modes else wallet["xpub"]
            invoice = Invoice(id=invoice_id, kiosk_id=request[KIOSK].kiosk_id,
                              address=deposit_address(xpub, wallet["network"], index), index=index, sats=sats,
                              fiat_minor=int(body.get("fiat_minor", 0)), currency=str(body.get("currency", "")),
                              expires_at=int(time.time()) + self.invoice_ttl_s)
            self.invoices[invoice_id] = invoice
        return self._json({"id": invoice.id, "address": invoice.address, "index": invoice.index,
                           "sats": invoice.sats, "expires_at": invoice.expires_at})

    async def _sell_invoice_status(self, request: web.Request) -> web.Response:
        invoice = self.invoices.get(request.match_info["invoice_id"])
        if invoice is None:
            return self._json({"error": "no such sell invoice"}, 404)
        answer: dict[str, Any] = {"id": invoice.id, "state": invoice.state(time.time()),
                                  "received_sats": invoice.received_sats, "confirmations": invoice.confirmations,
                                  "payment": None}
        modes = self.hostile.modes
        if "claim-without-tx" in modes:
            answer.update(state="confirmed", received_sats=invoice.sats, confirmations=6)
        elif {"pay-other-address", "wrong-merkle", "weak-headers"} & modes:
            mode = sorted({"pay-other-address", "wrong-merkle", "weak-headers"} & modes)[0]
            answer.update(state="confirmed", received_sats=invoice.sats, confirmations=6,
                          payment=_evidence_json(self._forged(invoice, mode)))
        elif invoice.txs:
            answer["payment"] = _evidence_json(self._evidence(invoice.txs[0]))
        return self._json(answer)

    def _signed_checkpoint_height(self) -> int:
        """Headers start after the checkpoint the operator signed last (else the chain's base)."""
        bundle = self.current_bundle() or {}
        checkpoint = bundle.get("payload", {}).get("settings", {}).get("sell", {}) or {}
        height = (checkpoint.get("checkpoint") or {}).get("height")
        return height if isinstance(height, int) and height >= self.chain.base_height else self.chain.base_height

    def _evidence(self, tx: Any) -> PaymentEvidence:
        evidence = self.chain.evidence(tx)
        if evidence.block_height is None:
            return evidence
        skip = self._signed_checkpoint_height() - self.chain.base_height
        return PaymentEvidence(raw_tx=evidence.raw_tx, headers=list(evidence.headers)[skip:],
                               block_height=evidence.block_height, merkle_branch=evidence.merkle_branch,
                               tx_index=evidence.tx_index)

    def _forged(self, invoice: Invoice, mode: str) -> PaymentEvidence:
        """The evidence a hostile CAS makes up for `invoice`, once per invoice and mode."""
        key = (invoice.id, mode)
        if key not in self._hostile_evidence:
            if mode == "pay-other-address":
                # A real payment, honestly mined: it just pays the attacker's own address.
                tx = self.chain.pay(deposit_address(self.rogue_xpub, "regtest", invoice.index), invoice.sats)
                self.chain.mine(6)
                evidence = self._evidence(tx)
            elif mode == "wrong-merkle":
                # A transaction that was never broadcast, claimed in the newest real block
                # with the branch of another transaction there.
                tx = self.chain.unsent_payment(invoice.address, invoice.sats)
                decoy = self.chain.pay(deposit_address(self.rogue_xpub, "regtest", invoice.index), 1_000)
                self.chain.mine(6)
                honest = self._evidence(decoy)
                evidence = PaymentEvidence(raw_tx=tx.serialize(), headers=honest.headers,
                                           block_height=honest.block_height, merkle_branch=honest.merkle_branch,
                                           tx_index=honest.tx_index)
            else:
                tx = self.chain.unsent_payment(invoice.address, invoice.sats)
                evidence = self.chain.forged_evidence(tx, blocks=6, bits=EASY_BITS)
            self._hostile_evidence[key] = evidence
        return self._hostile_evidence[key]


def _evidence_json(evidence: PaymentEvidence) -> dict[str, Any]:
    """Protocol 1's `payment` object (docs/cas-protocol.md §8)."""
    return {"raw_tx": evidence.raw_tx.hex(), "block_height": evidence.block_height,
            "merkle_branch": [h.hex() for h in evidence.merkle_branch], "tx_index": evidence.tx_index,
            "headers": [h.hex() for h in evidence.headers]}
