"""SimulatedOperator: everything an operator and a technician do to bring a kiosk onto
a CAS, played in one process against the CAS simulator, for `atm run --simulate`,
`atm demo` and the tests.

Usage:

    async with SimulatedOperator(workdir, kiosk_id="kiosk-1",
                                 settings={"currency": "EUR", "min_buy_minor": 500,
                                           "max_buy_minor": 100_000, "fee_percent": "5"},
                                 rates={"EUR": "60000"}) as op:
        client = op.client(poll_interval_s=1.0)   # a CasClient on op.state_dir
        client.on_command = kiosk_remote_command  # async (name, args); "deactivate" always
        client.on_settings = kiosk_new_settings    # (KioskSettings) when a signed bundle is accepted
        await client.start()
        ...                                        # op.cas is the simulator (controls, hostile modes)
        await client.stop()

On enter it: makes the operator's Ed25519 key with the offline tool's functions (the
CAS never sees the private half), makes a regtest wallet whose xpub goes into the
signed settings, starts the CAS simulator on 127.0.0.1 with TLS on a free port, makes
a pairing code and pairs the kiosk (state dir: workdir/kiosk-cas), publishes bundle
version 1 signed by the operator key, and sets the rates. On exit it stops the simulator.
Settings values may be Decimal or float (fees); they are signed as decimal strings.
Without `rate_bounds` in the settings it signs a tenth to ten times the starting rate.
Without `sell` it signs DEFAULT_SELL with the simulator chain's checkpoint (its first
block), so the kiosk can sell; `sell=None` signs no sell table (the kiosk does not sell).
A `sell` table without a `checkpoint` gets the chain's.
Later: `op.publish(max_buy_minor=...)` signs and serves the next version,
`op.cas.queue_command(kiosk_id, op.sign_command("activate"))` sends a signed command,
`op.cas.set_hostile("unsigned-bundle", ...)` plays a compromised CAS (see HOSTILE_MODES).
"""

from __future__ import annotations

import os
from decimal import Decimal
import secrets
import time
from pathlib import Path
from typing import Any, Mapping

from embit import bip32
from embit.networks import NETWORKS

from atm.cas.bundle import BUNDLE_FORMAT, BUNDLE_TYPE, parse_payload
from atm.cas.client import CasClient
from atm.cas.commands import COMMAND_TYPE
from atm.cas.pairing import PairingOffer, PairingResult, encode_pairing_code, pair
from atm.cas.signing import generate_operator_key, public_key_text, save_operator_key, sign_payload
from simulators.cas.server import CasSimulator

DEFAULT_SETTINGS: dict[str, Any] = {"currency": "EUR", "min_buy_minor": 500, "max_buy_minor": 100_000,
                                    "fee_percent": "5", "coins": ["BTC"], "max_offline_s": 300,
                                    "quote_max_age_s": 60}
# Without rate bounds of its own, the simulated operator signs a range of a tenth to ten
# times the starting rate: wide enough for any demo, narrow enough that a rate of 0.01
# or 10^12 from a hostile CAS is refused.
DEFAULT_BOUNDS_FACTOR = Decimal(10)
DEFAULT_SELL: dict[str, Any] = {"min_sell_minor": 2_000, "max_sell_minor": 50_000, "fee_percent": "5",
                                "fixed_fee_minor": 0, "zero_conf_cap_sats": 50_000, "confirmations_required": 2,
                                "invoice_ttl_s": 900}


def checkpoint_table(chain: Any) -> dict[str, Any]:
    """The signed form of a SimChain's checkpoint: height, display-order hash, least work."""
    checkpoint = chain.checkpoint
    return {"height": checkpoint.height, "block_hash": checkpoint.block_hash[::-1].hex(),
            "max_bits": format(chain.bits, "08x")}


def default_rate_bounds(currency: str, rate: str) -> dict[str, list[str]]:
    value = Decimal(rate)
    return {currency: [format((value / DEFAULT_BOUNDS_FACTOR).normalize(), "f"),
                       format((value * DEFAULT_BOUNDS_FACTOR).normalize(), "f")]}


def _signable(value: Any) -> Any:
    # Signed documents carry decimals as strings (no floats); callers may hand over
    # the kiosk config's Decimal or float values for fees and rates.
    if isinstance(value, (Decimal, float)):
        return str(Decimal(str(value)).normalize())
    return value


class SimulatedOperator:
    def __init__(self, workdir: Path, *, kiosk_id: str = "kiosk-1", settings: Mapping[str, Any] | None = None,
                 rates: Mapping[str, str] | None = None, network: str = "regtest", pair_kiosk: bool = True) -> None:
        self.workdir = Path(workdir)
        self.kiosk_id = kiosk_id
        self.network = network
        self.settings: dict[str, Any] = {key: _signable(value) for key, value in
                                         {**DEFAULT_SETTINGS, **(settings or {})}.items()}
        self.rates = dict(rates or {self.settings["currency"]: "60000"})
        currency = self.settings["currency"]
        if "rate_bounds" not in self.settings:
            self.settings["rate_bounds"] = default_rate_bounds(currency, self.rates.get(currency, "60000"))
        self.pair_kiosk = pair_kiosk
        self.state_dir = self.workdir / "kiosk-cas"
        self.operator_key_path = self.workdir / "operator" / "operator.key"
        self.operator_key = generate_operator_key()
        save_operator_key(self.operator_key_path, self.operator_key)
        # The operator's wallet; only the account xpub goes into the signed settings.
        net = NETWORKS[network]
        self.wallet_root = bip32.HDKey.from_seed(os.urandom(32), version=net["xprv"])
        self.xpub = self.wallet_root.derive("m/84h/1h/0h").to_public().to_string(version=net["zpub"])
        self.settings.setdefault("wallet", {"xpub": self.xpub, "network": network,
                                            "invalid_payment": "hold", "late_payment": "hold"})
        self.cas = CasSimulator(self.workdir / "cas")
        if "sell" not in self.settings:
            # Selling needs the signed wallet; a test that signs none gets no sell table.
            self.settings["sell"] = dict(DEFAULT_SELL) if self.settings.get("wallet") else None
        if self.settings["sell"] is None:
            del self.settings["sell"]
        else:
            self.settings["sell"] = {key: _signable(value) for key, value in self.settings["sell"].items()}
            self.settings["sell"].setdefault("checkpoint", checkpoint_table(self.cas.chain))
        self.version = 0
        self.command_sequence = 0
        self.pairing_code = ""
        self.pairing: PairingResult | None = None

    async def __aenter__(self) -> "SimulatedOperator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        await self.cas.start()
        token = secrets.token_urlsafe(24)
        self.cas.expect_pairing(token, self.kiosk_id)
        self.pairing_code = encode_pairing_code(PairingOffer(
            cas_url=self.cas.url, cas_pin=self.cas.pin, token=token,
            operator_key=public_key_text(self.operator_key), kiosk_id=self.kiosk_id))
        for currency, rate in self.rates.items():
            self.cas.set_rate(currency, rate)
        self.publish()
        if self.pair_kiosk:
            self.pairing = await pair(self.pairing_code, self.state_dir)

    async def stop(self) -> None:
        await self.cas.stop()

    def client(self, **options: Any) -> CasClient:
        """A CasClient on the paired state dir (not started)."""
        return CasClient.from_state(self.state_dir, **options)

    def sign_bundle(self, *, version: int, settings: Mapping[str, Any] | None = None,
                    trust: Mapping[str, Any] | None = None, kiosk_id: str | None = None,
                    key: Any = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"type": BUNDLE_TYPE, "format": BUNDLE_FORMAT,
                                   "kiosk_id": kiosk_id or self.kiosk_id, "version": version,
                                   "issued_at": int(time.time()), "settings": dict(settings or self.settings)}
        if trust:
            payload["trust"] = dict(trust)
        return sign_payload(payload, key or self.operator_key)

    def publish(self, *, trust: Mapping[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
        """Sign the next bundle version (settings updated by `changes`) and put it on the CAS.

        Like the operator's tool, it signs nothing a kiosk would refuse: BundleError names
        the setting (a test that wants a bad bundle signs it with sign_bundle)."""
        settings = {**self.settings, **{key: _signable(value) for key, value in changes.items()}}
        doc = self.sign_bundle(version=self.version + 1, settings=settings, trust=trust)
        parse_payload(doc["payload"])
        self.settings, self.version = settings, self.version + 1
        self.cas.publish_bundle(doc)
        return doc

    def sign_command(self, name: str, args: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self.command_sequence += 1
        return sign_payload({"type": COMMAND_TYPE, "kiosk_id": self.kiosk_id, "name": name,
                             "id": f"cmd-{self.command_sequence}-{secrets.token_hex(4)}",
                             "sequence": self.command_sequence, "issued_at": int(time.time()),
                             "args": dict(args or {})}, self.operator_key)
