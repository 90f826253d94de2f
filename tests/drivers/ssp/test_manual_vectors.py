"""The examples of ITL's own manuals, byte for byte: every complete frame of GA138 v2.2
(tests/vectors/ssp-ga138-frames.json), the poll-reply example of each note-validator event,
the three key-exchange frames, and a known-answer eSSP packet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drivers.ssp import crypto
from drivers.ssp.frames import (
    ENCRYPTED_PACKET,
    EVENT_DATA_LENGTH,
    Command,
    CrcError,
    Event,
    FrameDecoder,
    PollEvent,
    Reply,
    crc16,
    decode_frame,
    decode_poll_reply,
    encode_frame,
)

GA138 = json.loads((Path(__file__).resolve().parents[2] / "vectors" / "ssp-ga138-frames.json").read_text())
FRAMES = [(i, f["from"], f["hex"]) for i, f in enumerate(GA138["frames"])]
# Four device examples the manual prints without their leading generic reply code (the
# note-store count reply, two SMART System replies at address 0x40, the slave reset poll
# reply): their CRC is right for the bytes printed, so they still decode.
PRINTED_WITHOUT_GENERIC_CODE = {74, 101, 137, 147}


def test_the_vector_file_holds_the_220_frames_of_the_manual() -> None:
    assert len(FRAMES) == 220
    assert {who for _, who, _ in FRAMES} == {"host", "device"}


@pytest.mark.parametrize("index, who, wire", FRAMES, ids=[f"{i}-{w}" for i, w, _ in FRAMES])
def test_every_ga138_frame_decodes_with_a_good_crc_and_encodes_back_byte_for_byte(index: int, who: str,
                                                                                   wire: str) -> None:
    raw = bytes.fromhex(wire)
    frame = decode_frame(raw)                      # raises CrcError / FrameError on any defect
    assert frame.encode() == raw
    assert raw[2] == len(frame.data)
    # The same bytes fed one at a time through the streaming decoder give the same frame.
    decoder = FrameDecoder()
    assert [f for b in raw for f in decoder.feed(bytes([b]))] == [frame]
    assert decoder.errors == []
    if who == "device" and index not in PRINTED_WITHOUT_GENERIC_CODE:
        assert frame.data[0] in {r.value for r in Reply} | {ENCRYPTED_PACKET}


def test_a_single_flipped_bit_in_any_ga138_frame_is_caught_by_the_crc() -> None:
    caught = 0
    for _, _, wire in FRAMES:
        raw = bytearray(bytes.fromhex(wire))
        raw[3] ^= 0x01                              # first data byte
        if raw[3] == 0x7F:
            continue                                # would need stuffing: not the CRC's job
        with pytest.raises(CrcError):
            decode_frame(bytes(raw))
        caught += 1
    assert caught >= 215


# The poll-reply example on each note-validator event page of GA138 (host transmit
# 7F 80 01 07 12 02), and the event and data the manual says it shows.
EVENT_EXAMPLES = [
    ("7F8003F0EF00CFCA", Event.READ, b"\x00"),
    ("7F8003F0EE04D7CC", Event.CREDIT, b"\x04"),
    ("7F8002F0ED51A2", Event.REJECTING, b""),
    ("7F8002F0EC5422", Event.REJECTED, b""),
    ("7F8002F0EB45A2", Event.STACKED, b""),
    ("7F8002F0E94A22", Event.UNSAFE_JAM, b""),
    ("7F8002F0E84FA2", Event.DISABLED, b""),
    ("7F8003F0E602C07C", Event.FRAUD_ATTEMPT, b"\x02"),
    ("7F8002F0E76DA2", Event.STACKER_FULL, b""),
    ("7F8003F0E100CC6E", Event.NOTE_CLEARED_FROM_FRONT, b"\x00"),
    ("7F8003F0E202C3E4", Event.NOTE_CLEARED_INTO_CASHBOX, b"\x02"),
    ("7F8002F0E37622", Event.CASHBOX_REMOVED, b""),
    ("7F8002F0E467A2", Event.CASHBOX_REPLACED, b""),
    ("7F8002F0E56222", Event.BARCODE_TICKET_VALIDATED, b""),
    ("7F8002F0D1D9A2", Event.BARCODE_TICKET_ACK, b""),
    ("7F8002F0E07C22", Event.NOTE_PATH_OPEN, b""),
    ("7F8002F0B58223", Event.CHANNEL_DISABLE, b""),
    ("7F8002F0B68823", Event.INITIALISING, b""),
    ("7F8002F0A5E1A3", Event.TICKET_PRINTING, b""),
    ("7F8002F0A6EBA3", Event.TICKET_PRINTED, b""),
    ("7F8002F0AED823", Event.PRINT_HALTED, b""),
    ("7F8002F0ADD223", Event.TICKET_IN_BEZEL, b""),
    ("7F8002F0AFDDA3", Event.PRINTED_TO_CASHBOX, b""),
]


@pytest.mark.parametrize("wire, event, data", EVENT_EXAMPLES, ids=[e.name for _, e, _ in EVENT_EXAMPLES])
def test_each_manual_event_example_reads_as_that_event_with_the_manuals_data_size(wire: str, event: Event,
                                                                                  data: bytes) -> None:
    assert wire in {w.replace(" ", "") for _, _, w in FRAMES}
    frame = decode_frame(bytes.fromhex(wire))
    assert frame.data[0] == Reply.OK
    reply = decode_poll_reply(frame.data[1:])
    assert reply.warning is None
    assert reply.events == (PollEvent(event, data),)
    assert EVENT_DATA_LENGTH[event] == len(data)


# ------------------------------------------------------------------ key exchange (GA138 pp. 126-128)

def test_set_generator_frame_is_the_manuals_byte_for_byte() -> None:
    data = bytes([Command.SET_GENERATOR]) + crypto.u64(982451653)
    assert encode_frame(1, 0, data) == bytes.fromhex("7F80094AC5058F3A00000000B273")


def test_set_modulus_frame_is_the_manuals_byte_for_byte() -> None:
    data = bytes([Command.SET_MODULUS]) + crypto.u64(1287821)
    assert encode_frame(1, 0, data) == bytes.fromhex("7F80094B8DA61300000000006CF6")


def test_request_key_exchange_frame_is_the_manuals_byte_for_byte() -> None:
    data = bytes([Command.REQUEST_KEY_EXCHANGE]) + crypto.u64(7554354432121)
    assert encode_frame(1, 0, data) == bytes.fromhex("7F80094C79C89CE2DE0600009D52")


def test_the_manuals_ok_reply_to_the_key_exchange_commands_decodes() -> None:
    assert decode_frame(bytes.fromhex("7F8001F02380")).data == bytes([Reply.OK])


def test_the_manuals_example_numbers_are_primes_with_the_generator_larger() -> None:
    # GA138's example and GA973's walk-through (generator 0x7B059425, modulus 0x068BFB6B):
    # both send the generator larger than the modulus, both primes below 2^31.
    for generator, modulus in ((982451653, 1287821), (0x7B059425, 0x068BFB6B)):
        crypto.check_parameters(generator, modulus)
        assert modulus < generator < 2 ** 31


def test_a_slave_accepts_the_manuals_generator_larger_than_its_modulus_and_agrees_on_a_key() -> None:
    generator, modulus = 0x7B059425, 0x068BFB6B
    host = crypto.KeyExchange(generator, modulus, secret=0x53)
    slave = crypto.KeyExchange.new_slave(generator, modulus)
    assert slave.shared_key(host.intermediate) == host.shared_key(slave.intermediate)


# ------------------------------------------------------------------ known-answer eSSP packet

# Key: fixed (preset) key 0x0123456701234567 in the low eight bytes, negotiated key
# 0x1122334455667788 in the high eight, both little endian (GA138 "Encryption Keys").
KAT_KEY = bytes.fromhex("6745230167452301" "8877665544332211")


def _crc_bitwise(data: bytes) -> int:
    # A second, bit-at-a-time CRC-16 (poly 0x8005, seed 0xFFFF): not the codec's table.
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


@pytest.mark.parametrize("data, counter, plain_hex, cipher_hex", [
    # POLL at count 0: eLEN 01, eCOUNT 00000000, 07, eight bytes of packing, eCRC.
    (bytes([Command.POLL]), 0, "0100000000070000000000000000a1c7", "7baf69de806db181ea1ca8f2f262a9ac"),
    # A poll reply "OK, credit channel 2" at count 5.
    (bytes([0xF0, 0xEE, 0x02]), 5, "0305000000f0ee0200000000000069b5", "5801f7ec2e0f2d98914b7e113c3169be"),
], ids=["poll-count-0", "credit-reply-count-5"])
def test_known_answer_essp_packet(data: bytes, counter: int, plain_hex: str, cipher_hex: str) -> None:
    """The ciphertexts were computed outside this codebase, with
    `openssl enc -aes-128-ecb -K 67452301674523018877665544332211 -nopad` over the plaintext
    here (packing set to zero bytes so the packet is reproducible)."""
    plain = bytes.fromhex(plain_hex)
    assert _crc_bitwise(plain[:-2]).to_bytes(2, "little") == plain[-2:]
    assert crc16(plain[:-2]) == _crc_bitwise(plain[:-2])
    session = crypto.EsspSession(KAT_KEY, padding=lambda n: bytes(n))
    packet = session.seal(data, counter)
    assert packet == bytes([ENCRYPTED_PACKET]) + bytes.fromhex(cipher_hex)
    assert crypto.EsspSession(KAT_KEY).open(packet) == (counter, data)
    assert crypto.aes_key(0x1122334455667788, crypto.DEFAULT_FIXED_KEY) == KAT_KEY
