"""A small regtest-style block chain for the CAS simulator: real transactions, real
headers with proof of work at a low target, real merkle branches, so the kiosk's
payment checks (atm.cas.payment_proof) run for real in tests and the demo.

It also builds the evidence a hostile CAS would send: a claim with no transaction, a
transaction paying another address, a wrong merkle branch, headers of too little work.
Mining at the default target takes a few hundred hashes a block.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from dataclasses import dataclass, field

from embit import script
from embit.transaction import Transaction, TransactionInput, TransactionOutput

from atm.cas.payment_proof import Checkpoint, PaymentEvidence, sha256d, target_from_bits

# 0x1f7fffff: about one hash in 512 meets it, cheap to mine and far harder than
# regtest's 0x207fffff, so "too little work" can be shown with regtest headers.
DEFAULT_BITS = 0x1F7FFFFF
EASY_BITS = 0x207FFFFF


def merkle_root(leaves: list[bytes]) -> bytes:
    level = list(leaves)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def merkle_branch(leaves: list[bytes], index: int) -> list[bytes]:
    branch: list[bytes] = []
    level = list(leaves)
    while len(level) > 1:
        if len(level) % 2:
            level.append(level[-1])
        branch.append(level[index ^ 1])
        level = [sha256d(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        index >>= 1
    return branch


def mine_header(prev_hash: bytes, root: bytes, time: int, bits: int) -> bytes:
    target = target_from_bits(bits)
    for nonce in itertools.count():
        raw = struct.pack("<I32s32sIII", 0x20000000, prev_hash, root, time, bits, nonce)
        if int.from_bytes(sha256d(raw), "little") <= target:
            return raw
    raise AssertionError("unreachable")


@dataclass
class Block:
    header: bytes
    txs: list[Transaction]

    @property
    def hash(self) -> bytes:
        return sha256d(self.header)


@dataclass
class SimChain:
    """Blocks from a genesis the operator signs as the checkpoint. Heights count from
    `base_height` (the checkpoint's height)."""

    base_height: int = 100
    bits: int = DEFAULT_BITS
    blocks: list[Block] = field(default_factory=list)
    mempool: list[Transaction] = field(default_factory=list)
    _counter: itertools.count = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        genesis = mine_header(b"\x00" * 32, b"\x11" * 32, 1_700_000_000, self.bits)
        self.checkpoint_header = genesis

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.base_height, sha256d(self.checkpoint_header), target_from_bits(self.bits))

    @property
    def tip_height(self) -> int:
        return self.base_height + len(self.blocks)

    def _funding_input(self) -> TransactionInput:
        n = next(self._counter)
        return TransactionInput(hashlib.sha256(b"sim-funding-%d" % n).digest(), 0)

    def pay(self, address: str, sats: int, *, change_address: str | None = None) -> Transaction:
        """A transaction paying `address`, put in the mempool (unconfirmed)."""
        outputs = [TransactionOutput(sats, script.address_to_scriptpubkey(address))]
        if change_address:
            outputs.append(TransactionOutput(12_345, script.address_to_scriptpubkey(change_address)))
        tx = Transaction(vin=[self._funding_input()], vout=outputs)
        self.mempool.append(tx)
        return tx

    def mine(self, count: int = 1, *, bits: int | None = None) -> None:
        for _ in range(count):
            coinbase = Transaction(vin=[TransactionInput(b"\x00" * 32, 0xFFFFFFFF,
                                                         script_sig=script.Script(struct.pack("<I", self.tip_height + 1)
                                                                                  + b"sim"))],
                                   vout=[TransactionOutput(0, script.Script(b"\x6a"))])
            txs = [coinbase, *self.mempool]
            self.mempool = []
            prev = self.blocks[-1].hash if self.blocks else sha256d(self.checkpoint_header)
            root = merkle_root([tx.hash() for tx in txs])
            header = mine_header(prev, root, 1_700_000_000 + 600 * (len(self.blocks) + 1), bits or self.bits)
            self.blocks.append(Block(header, txs))

    def unsent_payment(self, address: str, sats: int) -> Transaction:
        """A well-formed transaction paying `address` that never reaches the chain: what a
        hostile CAS makes up to claim a payment."""
        return Transaction(vin=[self._funding_input()],
                           vout=[TransactionOutput(sats, script.address_to_scriptpubkey(address))])

    def forged_evidence(self, tx: Transaction, *, blocks: int = 1, bits: int = EASY_BITS) -> PaymentEvidence:
        """Evidence for `tx` in a private branch of `blocks` headers from the checkpoint,
        mined at `bits` (EASY_BITS: regtest work, less than the signed minimum). The
        branch links and each header meets its own target; only the work is too little."""
        coinbase = Transaction(vin=[TransactionInput(b"\x00" * 32, 0xFFFFFFFF, script_sig=script.Script(b"fork"))],
                               vout=[TransactionOutput(0, script.Script(b"\x6a"))])
        leaves = [coinbase.hash(), tx.hash()]
        prev, headers = sha256d(self.checkpoint_header), []
        for i in range(blocks):
            root = merkle_root(leaves) if i == 0 else merkle_root([sha256d(b"fork%d" % i)])
            header = mine_header(prev, root, 1_700_000_000 + 600 * (i + 1), bits)
            headers.append(header)
            prev = sha256d(header)
        return PaymentEvidence(raw_tx=tx.serialize(), headers=headers, block_height=self.base_height + 1,
                               merkle_branch=merkle_branch(leaves, 1), tx_index=1)

    def confirmations(self, tx: Transaction) -> int:
        """0 while in the mempool (or unknown), else the blocks from its own to the tip."""
        for i, block in enumerate(self.blocks):
            if any(t.hash() == tx.hash() for t in block.txs):
                return len(self.blocks) - i
        return 0

    def evidence(self, tx: Transaction) -> PaymentEvidence:
        """Honest evidence for `tx`: raw only while unconfirmed; branch and headers once mined."""
        raw = tx.serialize()
        for i, block in enumerate(self.blocks):
            leaves = [t.hash() for t in block.txs]
            if tx.hash() in leaves:
                index = leaves.index(tx.hash())
                return PaymentEvidence(raw_tx=raw, headers=[b.header for b in self.blocks],
                                       block_height=self.base_height + i + 1,
                                       merkle_branch=merkle_branch(leaves, index), tx_index=index)
        return PaymentEvidence(raw_tx=raw)
