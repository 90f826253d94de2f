"""A sell payment is proven to the kiosk, not claimed by the CAS: real transactions,
headers and merkle branches from the simulator's chain, and each hostile claim refused
with its own reason."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings, strategies as st

from atm.cas.payment_proof import (
    Checkpoint, PaymentEvidence, PaymentPolicy, PaymentProofError, merkle_root_from_branch, sha256d,
    target_from_bits, verify_chain, verify_payment,
)
from atm.cas.wallet import deposit_address
from simulators.cas.chain import EASY_BITS, SimChain, merkle_branch, merkle_root, mine_header

NETWORK = "regtest"
XPUB = ("tpubD6NzVbkrYhZ4XgiXtGrdW5XDAPFCL9h7we1vwNCpn8tGbBcgfVYjXyhWo4E1xkh56hjod1RhGjxbaTLV3X4FyWuejifB9jusQ46QzG87VKp")
DEPOSIT = deposit_address(XPUB, NETWORK, 7)
OTHER = deposit_address(XPUB, NETWORK, 8)
POLICY = PaymentPolicy(zero_conf_cap_sats=50_000, confirmations_required=2)


@pytest.fixture(scope="module")
def chain() -> SimChain:
    return SimChain()


def _verify(chain: SimChain, evidence: PaymentEvidence, amount: int, address: str = DEPOSIT,
            policy: PaymentPolicy = POLICY):
    return verify_payment(evidence, address=address, network=NETWORK, amount_sats=amount,
                          checkpoint=chain.checkpoint, policy=policy)


def test_target_from_bits_matches_bitcoins_known_values():
    # genesis block difficulty 1, and regtest's limit
    assert target_from_bits(0x1D00FFFF) == 0xFFFF * 2 ** (8 * (0x1D - 3))
    assert target_from_bits(0x207FFFFF) == 0x7FFFFF * 2 ** (8 * (0x20 - 3))


def test_bitcoin_genesis_header_meets_its_own_proof_of_work():
    # The mainnet genesis header: a published fact, checked with the kiosk's own code.
    genesis = bytes.fromhex(
        "01000000" + "00" * 32
        + "3ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a"
        + "29ab5f49" + "ffff001d" + "1dac2b7c")
    assert sha256d(genesis)[::-1].hex() == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
    checkpoint = Checkpoint(-1, b"\x00" * 32, target_from_bits(0x1D00FFFF))
    assert len(verify_chain([genesis], checkpoint)) == 1


def test_small_unconfirmed_payment_is_accepted_up_to_the_zero_conf_cap(chain):
    tx = chain.pay(DEPOSIT, 40_000)
    proof = _verify(chain, chain.evidence(tx), 40_000)
    assert (proof.paid_sats, proof.confirmations) == (40_000, 0)
    assert proof.txid == tx.txid().hex()


def test_unconfirmed_payment_above_the_cap_waits_for_confirmations(chain):
    tx = chain.pay(DEPOSIT, 80_000)
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, chain.evidence(tx), 80_000)
    assert err.value.reason == "needs_confirmation"
    chain.mine(1)
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, chain.evidence(tx), 80_000)
    assert err.value.reason == "needs_confirmation"          # 1 of 2
    chain.mine(1)
    proof = _verify(chain, chain.evidence(tx), 80_000)
    assert proof.confirmations == 2


def test_confirmed_payment_in_a_block_of_many_transactions(chain):
    txs = [chain.pay(OTHER, 1_000 + i) for i in range(6)]
    ours = chain.pay(DEPOSIT, 120_000, change_address=OTHER)
    txs.append(chain.pay(OTHER, 5_000))
    chain.mine(3)
    proof = _verify(chain, chain.evidence(ours), 120_000)
    assert proof.paid_sats == 120_000 and proof.confirmations == 3
    assert len(txs) == 7


def test_a_claim_with_no_transaction_is_refused(chain):
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, PaymentEvidence(raw_tx=b""), 10_000)
    assert err.value.reason == "no_transaction"


def test_a_transaction_paying_another_address_is_refused(chain):
    tx = chain.pay(OTHER, 40_000)
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, chain.evidence(tx), 40_000)
    assert err.value.reason == "wrong_address"


def test_an_underpayment_is_refused(chain):
    tx = chain.pay(DEPOSIT, 39_999)
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, chain.evidence(tx), 40_000)
    assert err.value.reason == "underpaid"


def test_a_wrong_merkle_branch_is_refused(chain):
    tx = chain.pay(DEPOSIT, 90_000)
    chain.mine(2)
    honest = chain.evidence(tx)
    forged_branch = [bytes(32)] + list(honest.merkle_branch[1:])
    forged = PaymentEvidence(honest.raw_tx, honest.headers, honest.block_height, forged_branch or [bytes(32)],
                             honest.tx_index)
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, forged, 90_000)
    assert err.value.reason == "bad_merkle"


def test_a_transaction_claimed_in_a_block_that_does_not_hold_it_is_refused(chain):
    tx = chain.pay(DEPOSIT, 90_000)                  # stays in the mempool
    chain.mine(2)
    chain.mempool.remove(tx) if tx in chain.mempool else None
    other_block = chain.blocks[-1]
    leaves = [t.hash() for t in other_block.txs]
    claim = PaymentEvidence(tx.serialize(), [b.header for b in chain.blocks], chain.tip_height,
                            merkle_branch(leaves, 0), 0)
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, claim, 90_000)
    assert err.value.reason == "bad_merkle"


def test_headers_of_too_little_work_are_refused():
    """A hostile CAS mines its fake confirmations at regtest's easiest target: the signed
    minimum work refuses them even though each meets its own claimed target."""
    weak = SimChain()
    tx = weak.pay(DEPOSIT, 90_000)
    weak.mine(2, bits=EASY_BITS)
    with pytest.raises(PaymentProofError) as err:
        _verify(weak, weak.evidence(tx), 90_000)
    assert err.value.reason == "insufficient_work"


def test_a_header_that_does_not_meet_its_own_target_is_refused(chain):
    tx = chain.pay(DEPOSIT, 90_000)
    chain.mine(2)
    honest = chain.evidence(tx)
    headers = list(honest.headers)
    # keep the fields, break the nonce until the hash misses the target
    raw = bytearray(headers[-1])
    target = target_from_bits(int.from_bytes(raw[72:76], "little"))
    nonce = int.from_bytes(raw[76:80], "little")
    while True:
        nonce += 1
        raw[76:80] = struct.pack("<I", nonce & 0xFFFFFFFF)
        if int.from_bytes(sha256d(bytes(raw)), "little") > target:
            break
    headers[-1] = bytes(raw)
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, PaymentEvidence(honest.raw_tx, headers, honest.block_height, honest.merkle_branch,
                                       honest.tx_index), 90_000)
    assert err.value.reason == "insufficient_work"


def test_headers_that_do_not_link_to_the_signed_checkpoint_are_refused(chain):
    tx = chain.pay(DEPOSIT, 90_000)
    chain.mine(2)
    honest = chain.evidence(tx)
    elsewhere = Checkpoint(chain.base_height, b"\x42" * 32, chain.checkpoint.max_target)
    with pytest.raises(PaymentProofError) as err:
        verify_payment(honest, address=DEPOSIT, network=NETWORK, amount_sats=90_000, checkpoint=elsewhere,
                       policy=POLICY)
    assert err.value.reason == "bad_chain"


def test_a_64_byte_transaction_is_refused_as_a_possible_inner_node(chain):
    # 4 version + 1 + 32 + 4 + 1 + 13 script + 4 sequence + 1 outputs + 4 locktime = 64
    from embit.transaction import Transaction, TransactionInput
    from embit import script
    tx = Transaction(vin=[TransactionInput(b"\x01" * 32, 0, script_sig=script.Script(b"\x00" * 13))], vout=[])
    assert len(tx.serialize()) == 64
    with pytest.raises(PaymentProofError) as err:
        _verify(chain, PaymentEvidence(raw_tx=tx.serialize()), 1)
    assert err.value.reason == "bad_transaction"


def test_merkle_branch_round_trips_for_every_position():
    leaves = [sha256d(bytes([i])) for i in range(11)]
    root = merkle_root(leaves)
    for i, leaf in enumerate(leaves):
        assert merkle_root_from_branch(leaf, merkle_branch(leaves, i), i) == root


def test_mined_headers_meet_their_target():
    header = mine_header(b"\x00" * 32, b"\x01" * 32, 1, 0x1F7FFFFF)
    assert int.from_bytes(sha256d(header), "little") <= target_from_bits(0x1F7FFFFF)


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300), headers=st.lists(st.binary(min_size=0, max_size=90), max_size=3),
       height=st.one_of(st.none(), st.integers(-5, 300)),
       branch=st.lists(st.binary(min_size=0, max_size=40), max_size=5), index=st.integers(-3, 70))
def test_any_evidence_is_a_typed_refusal_or_a_proof(raw, headers, height, branch, index):
    chain_checkpoint = Checkpoint(100, b"\x00" * 32, target_from_bits(0x1F7FFFFF))
    try:
        proof = verify_payment(PaymentEvidence(raw, headers, height, branch, index), address=DEPOSIT,
                               network=NETWORK, amount_sats=1_000, checkpoint=chain_checkpoint, policy=POLICY)
    except PaymentProofError as exc:
        assert exc.reason
    else:
        assert proof.paid_sats >= 1_000
