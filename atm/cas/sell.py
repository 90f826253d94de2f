"""How the kiosk judges a sell invoice's payment: from evidence it verifies itself
(atm.cas.payment_proof) under the operator's signed sell rules, never from the CAS's
"state", "received_sats" or "confirmations". Shared by CasClient and the stand-in CAS;
no I/O here, the caller keeps the invoice and the sightings durable.

Timing is the kiosk's own: an invoice expires at the earlier of the CAS's expires_at
and the kiosk's clock when it accepted the invoice plus the signed invoice_ttl_s, and a
payment is in time when the kiosk itself first saw its transaction before that. A CAS
can hide a payment for a while (it is then late) but cannot backdate what the kiosk saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from atm.cas.interface import SellPayment, SellSettings
from atm.cas.payment_proof import (PaymentEvidence, PaymentPolicy, PaymentProofError, parse_transaction,
                                   verify_payment)

# The reasons a customer's own mistake explains (too few coins sent); the others mean
# the evidence is forged or broken, which only a misbehaving CAS produces.
CUSTOMER_REASONS = ("underpaid",)


@dataclass(frozen=True)
class AcceptedInvoice:
    """A sell invoice the kiosk accepted (address checked against the signed xpub)."""

    id: str
    address: str
    index: int
    sats: int
    network: str
    accepted_at: float        # the kiosk's clock when it accepted the invoice
    expires_at: float         # min(CAS expires_at, accepted_at + signed invoice_ttl_s)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "address": self.address, "index": self.index, "sats": self.sats,
                "network": self.network, "accepted_at": self.accepted_at, "expires_at": self.expires_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "AcceptedInvoice":
        return cls(id=str(data["id"]), address=str(data["address"]), index=int(data["index"]),
                   sats=int(data["sats"]), network=str(data["network"]), accepted_at=float(data["accepted_at"]),
                   expires_at=float(data["expires_at"]))


def invoice_expiry(cas_expires_at: int, accepted_at: float, sell: SellSettings) -> float:
    """The CAS may shorten an invoice's life, never stretch it past the signed TTL."""
    return float(min(cas_expires_at, accepted_at + sell.invoice_ttl_s))


def judge_payment(invoice: AcceptedInvoice, evidence: PaymentEvidence | None, *, cas_claims_payment: bool,
                  sell: SellSettings, now: float, first_seen: Callable[[str, float], float]) -> SellPayment:
    """What the kiosk can prove about `invoice`'s payment now.

    `first_seen(txid, now)` records a sighting unless one is kept already and returns
    the first one. PaymentProofError when the evidence proves nothing it claims: its
    reason says why (no_transaction for a claim with no transaction at all)."""
    if evidence is None:
        if cas_claims_payment:
            # Only used to refuse: a CAS that says "paid" and shows nothing is lying or broken.
            raise PaymentProofError("the CAS says the invoice is paid but sends no transaction", "no_transaction")
        if now > invoice.expires_at:
            return SellPayment(invoice.id, "expired", None, False, "no payment arrived before the invoice expired")
        return SellPayment(invoice.id, "waiting", None, True, "waiting for the payment")
    policy = PaymentPolicy(zero_conf_cap_sats=sell.zero_conf_cap_sats,
                           confirmations_required=sell.confirmations_required)
    try:
        proof = verify_payment(evidence, address=invoice.address, network=invoice.network,
                               amount_sats=invoice.sats, checkpoint=sell.checkpoint, policy=policy)
    except PaymentProofError as exc:
        if exc.reason != "needs_confirmation":
            raise
        # needs_confirmation is raised only after the transaction was shown to pay the
        # address in full (and, when mined, after the chain and branch checked out).
        txid = parse_transaction(evidence.raw_tx).hash()[::-1].hex()
        seen = first_seen(txid, now)
        done = 0 if evidence.block_height is None else _confirmations(evidence, sell)
        return SellPayment(invoice.id, "waiting", None, seen <= invoice.expires_at,
                           f"{done} of {sell.confirmations_required} confirmations")
    seen = first_seen(proof.txid, now)
    return SellPayment(invoice.id, "proven", proof, seen <= invoice.expires_at,
                       "paid" if proof.confirmations else "paid, not yet confirmed (within the signed cap)")


def _confirmations(evidence: PaymentEvidence, sell: SellSettings) -> int:
    # The chain was verified by verify_payment before it asked for more confirmations.
    if evidence.block_height is None:
        return 0
    return max(0, sell.checkpoint.height + len(evidence.headers) - evidence.block_height + 1)
