"""Checks that a sell payment happened, from evidence the kiosk verifies itself.

A CAS's word that "the invoice is paid" routes cash out of the kiosk, so it is never
taken on trust: the CAS hands over the raw transaction and, once it is mined, the
merkle branch and the block headers from the newest operator-signed checkpoint up to
the tip. This module checks them with no network and no state: the transaction pays
the derived deposit address at least the amount, the headers link from the
checkpoint, each shows its own proof of work and at least the signed minimum work,
the merkle branch puts the transaction in one of them, and the confirmation count
follows from the heights. A zero-confirmation payment counts only up to a signed cap.

Byte orders: hashes inside headers and merkle branches are in internal order (as
hashed); txids and block hashes shown to people are reversed (display order).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from embit import script
from embit.compact import to_bytes as varint
from embit.networks import NETWORKS
from embit.transaction import Transaction

HEADER_SIZE = 80
MAX_HEADERS = 2_016           # one retarget period past a checkpoint; an operator signs a newer one long before
MAX_BRANCH = 32               # a merkle branch deeper than this is a block of over 4 billion transactions
MAX_RAW_TX = 400_000          # bytes; the consensus weight limit bounds a standard transaction far below this


class PaymentProofError(ValueError):
    """The evidence does not prove the payment. `reason` is a short code for alerts and
    the journal; the message says what was wrong in words an operator can act on."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Checkpoint:
    """A block the operator signed as on the real chain, and the least work a later
    header must show (the largest target it may claim)."""

    height: int
    block_hash: bytes            # internal byte order, 32 bytes
    max_target: int

    @classmethod
    def from_display(cls, height: int, block_hash_hex: str, max_target: int) -> "Checkpoint":
        raw = bytes.fromhex(block_hash_hex)
        if len(raw) != 32:
            raise PaymentProofError("checkpoint block hash must be 32 bytes of hex", "bad_checkpoint")
        return cls(height, raw[::-1], max_target)


@dataclass(frozen=True)
class PaymentEvidence:
    """What the CAS sends for one sell payment. Unconfirmed: only `raw_tx`."""

    raw_tx: bytes
    headers: Sequence[bytes] = ()            # checkpoint+1 .. tip, 80 bytes each
    block_height: int | None = None          # height of the block holding the transaction
    merkle_branch: Sequence[bytes] = ()      # sibling hashes from the leaf up, internal order
    tx_index: int = 0                        # position of the transaction in its block


@dataclass(frozen=True)
class VerifiedPayment:
    txid: str                     # display order hex
    paid_sats: int                # sum of the outputs to the deposit address
    confirmations: int            # 0 for an unconfirmed payment


@dataclass(frozen=True)
class PaymentPolicy:
    """The signed rules a payment must meet before cash leaves the kiosk."""

    zero_conf_cap_sats: int       # at most this much is paid out on an unconfirmed transaction
    confirmations_required: int   # for anything above the cap


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def target_from_bits(bits: int) -> int:
    """The target a header's compact `bits` field claims (Bitcoin's nBits encoding)."""
    exponent = bits >> 24
    mantissa = bits & 0x007FFFFF
    if bits & 0x00800000:
        raise PaymentProofError(f"header bits {bits:#010x} encode a negative target", "bad_header")
    if exponent <= 3:
        return mantissa >> (8 * (3 - exponent))
    return mantissa << (8 * (exponent - 3))


@dataclass(frozen=True)
class Header:
    version: int
    prev_hash: bytes
    merkle_root: bytes
    time: int
    bits: int
    nonce: int
    hash: bytes                    # internal order

    @classmethod
    def parse(cls, raw: bytes) -> "Header":
        if not isinstance(raw, (bytes, bytearray)) or len(raw) != HEADER_SIZE:
            raise PaymentProofError(f"a block header is {HEADER_SIZE} bytes, got "
                                    f"{len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__}",
                                    "bad_header")
        raw = bytes(raw)
        return cls(version=int.from_bytes(raw[0:4], "little"), prev_hash=raw[4:36], merkle_root=raw[36:68],
                   time=int.from_bytes(raw[68:72], "little"), bits=int.from_bytes(raw[72:76], "little"),
                   nonce=int.from_bytes(raw[76:80], "little"), hash=sha256d(raw))


def parse_transaction(raw_tx: bytes) -> Transaction:
    if not isinstance(raw_tx, (bytes, bytearray)) or not raw_tx:
        raise PaymentProofError("the CAS sent no transaction for this payment", "no_transaction")
    if len(raw_tx) > MAX_RAW_TX:
        raise PaymentProofError(f"transaction of {len(raw_tx)} bytes is larger than any standard one", "bad_transaction")
    try:
        tx = Transaction.parse(bytes(raw_tx))
    except Exception as exc:     # embit raises assorted errors on garbage; all mean the same here
        raise PaymentProofError(f"the payment transaction does not parse: {type(exc).__name__}",
                                "bad_transaction") from None
    if tx.serialize() != bytes(raw_tx):
        # trailing bytes or a non-canonical encoding: two parties could read it differently
        raise PaymentProofError("the payment transaction has bytes past its end", "bad_transaction")
    if len(_without_witness(tx)) == 64:
        # A 64-byte transaction can be read as an inner merkle node: the known way to fake
        # an SPV inclusion proof. No real payment is that small.
        raise PaymentProofError("a 64-byte transaction cannot be proven by a merkle branch", "bad_transaction")
    return tx


def _without_witness(tx: Transaction) -> bytes:
    """The serialization a txid is computed over (no segwit marker, flag or witness)."""
    out = tx.version.to_bytes(4, "little")
    out += varint(len(tx.vin)) + b"".join(vin.serialize() for vin in tx.vin)
    out += varint(len(tx.vout)) + b"".join(vout.serialize() for vout in tx.vout)
    return out + tx.locktime.to_bytes(4, "little")


def paid_to(tx: Transaction, address: str, network: str) -> int:
    """Satoshis that `tx` pays to `address`."""
    try:
        wanted = script.address_to_scriptpubkey(address)
    except Exception:
        raise PaymentProofError(f"deposit address {address[:90]!r} is not a valid address", "bad_address") from None
    if network not in NETWORKS:
        raise PaymentProofError(f"unknown network {network!r}", "bad_address")
    return sum(out.value for out in tx.vout if out.script_pubkey.data == wanted.data)


def merkle_root_from_branch(leaf: bytes, branch: Sequence[bytes], index: int) -> bytes:
    if len(branch) > MAX_BRANCH:
        raise PaymentProofError(f"merkle branch of {len(branch)} hashes is deeper than any block", "bad_merkle")
    if index < 0 or index >= (1 << len(branch)) and branch:
        raise PaymentProofError(f"transaction index {index} does not fit a branch of {len(branch)}", "bad_merkle")
    node = leaf
    for sibling in branch:
        if not isinstance(sibling, (bytes, bytearray)) or len(sibling) != 32:
            raise PaymentProofError("a merkle branch hash is not 32 bytes", "bad_merkle")
        # A sibling equal to the node is Bitcoin's duplicated last leaf, which is legitimate.
        node = sha256d(bytes(sibling) + node) if index & 1 else sha256d(node + bytes(sibling))
        index >>= 1
    if index:
        raise PaymentProofError("transaction index points past the branch", "bad_merkle")
    return node


def verify_chain(headers: Sequence[bytes], checkpoint: Checkpoint) -> list[Header]:
    """Headers that link from the checkpoint, each with enough work. Raises otherwise."""
    if len(headers) > MAX_HEADERS:
        raise PaymentProofError(f"{len(headers)} headers past the checkpoint: the operator must sign a newer "
                                "checkpoint", "stale_checkpoint")
    parsed: list[Header] = []
    prev = checkpoint.block_hash
    for i, raw in enumerate(headers):
        header = Header.parse(raw)
        height = checkpoint.height + i + 1
        if header.prev_hash != prev:
            raise PaymentProofError(f"header at height {height} does not link to the one before it", "bad_chain")
        target = target_from_bits(header.bits)
        if target == 0 or target > checkpoint.max_target:
            raise PaymentProofError(f"header at height {height} claims less work than the operator's signed "
                                    "minimum", "insufficient_work")
        if int.from_bytes(header.hash, "little") > target:
            raise PaymentProofError(f"header at height {height} does not meet its own proof of work",
                                    "insufficient_work")
        parsed.append(header)
        prev = header.hash
    return parsed


def verify_payment(evidence: PaymentEvidence, *, address: str, network: str, amount_sats: int,
                   checkpoint: Checkpoint, policy: PaymentPolicy) -> VerifiedPayment:
    """Prove that `address` was paid at least `amount_sats` under `policy`, or raise
    PaymentProofError. Nothing here trusts the CAS: every claim is recomputed."""
    if amount_sats <= 0:
        raise PaymentProofError("a payment must be for a positive amount", "bad_amount")
    tx = parse_transaction(evidence.raw_tx)
    paid = paid_to(tx, address, network)
    if paid == 0:
        raise PaymentProofError("the transaction does not pay the deposit address", "wrong_address")
    if paid < amount_sats:
        raise PaymentProofError(f"the transaction pays {paid} sats of the {amount_sats} asked", "underpaid")
    txid_internal = tx.hash()
    txid = txid_internal[::-1].hex()

    if evidence.block_height is None:
        if amount_sats > policy.zero_conf_cap_sats:
            raise PaymentProofError(f"{amount_sats} sats is above the signed zero-confirmation cap of "
                                    f"{policy.zero_conf_cap_sats}; waiting for a confirmation",
                                    "needs_confirmation")
        return VerifiedPayment(txid, paid, 0)

    chain = verify_chain(evidence.headers, checkpoint)
    offset = evidence.block_height - checkpoint.height - 1
    if not 0 <= offset < len(chain):
        raise PaymentProofError(f"block height {evidence.block_height} is not among the headers sent "
                                f"({checkpoint.height + 1}..{checkpoint.height + len(chain)})", "bad_merkle")
    root = merkle_root_from_branch(txid_internal, evidence.merkle_branch, evidence.tx_index)
    if root != chain[offset].merkle_root:
        raise PaymentProofError("the merkle branch does not put the transaction in the block it names",
                                "bad_merkle")
    confirmations = len(chain) - offset
    if amount_sats > policy.zero_conf_cap_sats and confirmations < policy.confirmations_required:
        raise PaymentProofError(f"{confirmations} of {policy.confirmations_required} confirmations",
                                "needs_confirmation")
    return VerifiedPayment(txid, paid, confirmations)
