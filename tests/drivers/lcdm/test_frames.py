"""LCDM codec: every example frame of the fact sheet (section 6) and the shared vectors,
decoded to what the protocol says they mean and re-encoded byte for byte; the error
tables; and property tests that any bytes give a frame or a typed error, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from drivers.lcdm.frames import (
    ACK,
    EOT,
    LCDM2000,
    LCDM4000,
    NAK,
    SOH,
    BccError,
    Cmd2000,
    Cmd4000,
    ErrorKind,
    Frame,
    FrameDecoder,
    FrameError,
    LcdmProtocolError,
    MessageError,
    bcc,
    command,
    decode_frame,
    dispense_2000,
    dispense_4000,
    encode_counts_4000,
    encode_dispense_result_2000,
    encode_status_2000,
    encode_status_4000,
    error_code,
    parse_dispense_2000,
    parse_operation_4000,
    parse_purge_2000,
    parse_request_2000,
    parse_request_4000,
    parse_reset_4000,
    parse_rom_2000,
    parse_status_2000,
    parse_status_4000,
    response,
    response_length_4000,
)
from hal.errors import ProtocolError

VECTORS = Path(__file__).resolve().parents[2] / "vectors"
EXAMPLES = {(row["model"], row["name"]): bytes.fromhex(row["hex"])
            for row in json.loads((VECTORS / "lcdm-examples.json").read_text())["frames"]}
SHARED = {name: bytes.fromhex(h) for name, h in json.loads((VECTORS / "vectors.json").read_text())["lcdm"]["frames"].items()}


def ex(model: str, name: str) -> bytes:
    return EXAMPLES[(model, name)]


def test_every_example_frame_has_a_correct_bcc_and_round_trips():
    assert len(EXAMPLES) == 29
    for (model, name), raw in EXAMPLES.items():
        frame = decode_frame(raw)
        assert bcc(raw[:-1]) == raw[-1], name
        assert frame.encode() == raw, name
        expected_id = LCDM2000.device_id if model == "lcdm2000" else LCDM4000.device_id
        assert frame.device_id == expected_id, name
        assert frame.is_command == (raw[0] == EOT), name


def test_worked_bcc_examples_from_the_fact_sheet():
    assert command(0x50, Cmd2000.PURGE) == bytes.fromhex("04 50 02 44 03 11")
    assert command(0x30, Cmd4000.RESET) == bytes.fromhex("04 30 02 44 03 71")


def test_shared_vectors_are_the_commands_the_codec_builds():
    assert SHARED["lcdm2000 status"] == command(0x50, Cmd2000.STATUS)
    cmd, data = dispense_2000(5, 0)
    assert SHARED["lcdm2000 upper dispense 5"] == command(0x50, cmd, data)
    assert SHARED["lcdm4000 status"] == command(0x30, Cmd4000.STATUS)
    assert SHARED["lcdm4000 purge"] == command(0x30, Cmd4000.PURGE)


def test_lcdm2000_dispense_commands_are_built_byte_for_byte():
    assert command(0x50, *dispense_2000(10, 0)) == ex("lcdm2000", "upper dispense 10")
    assert command(0x50, *dispense_2000(3, 0)) == ex("lcdm2000", "upper dispense 3")
    assert command(0x50, *dispense_2000(0, 5)) == ex("lcdm2000", "lower dispense 5")
    assert command(0x50, *dispense_2000(3, 2)) == ex("lcdm2000", "upper 3 + lower 2")
    assert command(0x50, Cmd2000.UPPER_TEST) == ex("lcdm2000", "upper test")
    assert command(0x50, Cmd2000.ROM_VERSION) == ex("lcdm2000", "rom version")
    assert parse_request_2000(Cmd2000.BOTH_DISPENSE, b"0302") == (3, 2)


@pytest.mark.parametrize("upper,lower", [(61, 0), (0, 61), (0, 0), (-1, 2)])
def test_lcdm2000_counts_outside_one_command_are_refused_before_sending(upper, lower):
    with pytest.raises(MessageError):
        dispense_2000(upper, lower)


def test_lcdm2000_responses_parse_to_exit_and_reject_counts():
    three = parse_dispense_2000(decode_frame(ex("lcdm2000", "response: 3 out")))
    assert three.error.ok and three.exited() == (3, 0) and three.rejected() == (0, 0)
    one_rejected = parse_dispense_2000(decode_frame(ex("lcdm2000", "response: 3 out, 1 rejected")))
    assert one_rejected.exited() == (3, 0) and one_rejected.rejected() == (1, 0)
    assert one_rejected.counts[0].picked == 4
    empty = parse_dispense_2000(decode_frame(ex("lcdm2000", "response: lower empty after 2 out")))
    assert empty.exited() == (0, 2) and empty.error.kind is ErrorKind.CASSETTE_EMPTY
    assert empty.error.cassette == 1 and empty.counts[1].near_end is True
    both = parse_dispense_2000(decode_frame(ex("lcdm2000", "response: all out")))
    assert both.exited() == (3, 2) and both.rejected() == (0, 0) and both.error.ok
    test = parse_dispense_2000(decode_frame(ex("lcdm2000", "upper test response")))
    assert test.exited() == (0, 0) and test.rejected() == (1, 0)


def test_lcdm2000_simulator_side_encoders_give_the_example_responses():
    data = encode_dispense_result_2000(Cmd2000.UPPER_DISPENSE, 0x30, [(4, 3, 1, False)])
    assert response(0x50, Cmd2000.UPPER_DISPENSE, data) == ex("lcdm2000", "response: 3 out, 1 rejected")
    data = encode_dispense_result_2000(Cmd2000.BOTH_DISPENSE, 0x30, [(3, 3, 0, False), (2, 2, 0, False)])
    assert response(0x50, Cmd2000.BOTH_DISPENSE, data) == ex("lcdm2000", "response: all out")
    status = encode_status_2000(0x30, upper_present=True, lower_present=True, upper_near_end=False,
                                lower_near_end=False, reject_tray_present=True, exit_blocked=False)
    assert response(0x50, Cmd2000.STATUS, status) == ex("lcdm2000", "status response, healthy")


def test_lcdm2000_status_rom_and_purge():
    status = parse_status_2000(decode_frame(ex("lcdm2000", "status response, healthy")))
    assert status.error.ok and not status.path_blocked and status.reject_tray_present
    assert [(c.present, c.near_end) for c in status.cassettes] == [(True, False), (True, False)]
    missing = parse_status_2000(Frame(SOH, 0x50, Cmd2000.STATUS, bytes((0x30, 0x35, 0xA0, 0xC2))))
    assert missing.path_blocked and missing.reject_tray_present is False
    assert [c.present for c in missing.cassettes] == [False, True]
    rom = parse_rom_2000(decode_frame(ex("lcdm2000", "rom version response")))
    assert (rom.text, rom.model_letter, rom.version, rom.checksum) == ("T20T5624", "T", "20", "5624")
    assert parse_purge_2000(decode_frame(ex("lcdm2000", "purge response"))).error.ok


def test_lcdm2000_short_error_frame_carries_no_counts():
    result = parse_dispense_2000(Frame(SOH, 0x50, Cmd2000.UPPER_DISPENSE, b"\x45"))
    assert result.counts is None and result.error.kind is ErrorKind.CASSETTE_MISSING


def test_lcdm4000_dispense_commands_are_built_byte_for_byte():
    assert command(0x30, Cmd4000.DISPENSE, dispense_4000([3])) == ex("lcdm4000", "dispense 3 from cassette 1")
    assert command(0x30, Cmd4000.DISPENSE, dispense_4000([2, 0, 1, 0])) == ex("lcdm4000", "dispense 2 from c1 + 1 from c3")
    assert parse_request_4000(dispense_4000([2, 0, 1])) == (2, 0, 1, 0)
    assert parse_request_4000(b"\x22\x20\x21\x20\x20\x20\x25") == (2, 0, 1, 0)     # lamassu's 7 bytes
    for name, cmd in (("status", Cmd4000.STATUS), ("purge", Cmd4000.PURGE), ("last status", Cmd4000.LAST_STATUS),
                      ("reset", Cmd4000.RESET)):
        assert command(0x30, cmd) == ex("lcdm4000", name)


@pytest.mark.parametrize("counts", [[0, 0, 0, 0], [101], [50, 51], [1, 1, 1, 1, 1], [-1, 2]])
def test_lcdm4000_counts_outside_one_command_are_refused_before_sending(counts):
    with pytest.raises(MessageError):
        dispense_4000(counts)


def test_lcdm4000_responses_parse_to_exit_reject_and_presence():
    out = parse_operation_4000(decode_frame(ex("lcdm4000", "response: 3 out")))
    assert out.error.ok and out.exited() == (3, 0, 0, 0) and out.rejected() == (0, 0, 0, 0)
    assert [c.present for c in out.counts] == [True, True, False, False]
    rej = parse_operation_4000(decode_frame(ex("lcdm4000", "response: 3 out, 1 rejected")))
    assert rej.exited() == (3, 0, 0, 0) and rej.rejected() == (1, 0, 0, 0)
    jam = parse_operation_4000(decode_frame(ex("lcdm4000", "response: jam after 1 out")))
    assert jam.exited() == (1, 0, 0, 0) and jam.error.kind is ErrorKind.JAM and jam.error.value == 0x24
    purge = parse_operation_4000(decode_frame(ex("lcdm4000", "purge response")))
    assert purge.cmd == Cmd4000.PURGE and purge.error.ok and purge.rejected() == (0, 0, 0, 0)
    last = parse_operation_4000(decode_frame(ex("lcdm4000", "last status response: dispense, 2 out of c1")))
    assert last.cmd == Cmd4000.DISPENSE and last.exited() == (2, 0, 0, 0) and last.error.ok
    assert parse_reset_4000(decode_frame(ex("lcdm4000", "reset response"))).ok


def test_lcdm4000_status_and_simulator_side_encoders():
    raw = ex("lcdm4000", "status response, cassettes 1-2")
    status = parse_status_4000(decode_frame(raw))
    assert status.error.ok and not status.path_blocked
    assert [c.present for c in status.cassettes] == [True, True, False, False]
    data = encode_status_4000(0x20, 0x00, [(True, False), (True, False), (False, False), (False, False)])
    assert response(0x30, Cmd4000.STATUS, data) == raw
    body = bytes((0x20, 0x30)) + encode_counts_4000([(3, 1, True), (0, 0, True), (0, 0, False), (0, 0, False)])
    assert response(0x30, Cmd4000.DISPENSE, body + b"\x20" * 9) == ex("lcdm4000", "response: 3 out, 1 rejected")


def test_lcdm4000_status_with_etx_valued_bits_is_read_by_length():
    """A STATUS whose bit-field bytes equal ETX (03) must not end the frame early."""
    data = encode_status_4000(0x20, 0x03, [(True, False), (True, False), (False, False), (False, False)])
    raw = response(0x30, Cmd4000.STATUS, data)
    decoder = FrameDecoder(start=SOH, device_id=0x30, length_for=response_length_4000)
    items = list(decoder.feed(bytes((ACK,)) + raw + bytes((EOT,))))
    assert items[0] == ACK and items[-1] == EOT
    assert isinstance(items[1], Frame) and items[1].data == data
    assert parse_status_4000(items[1]).path_blocked


def test_error_tables_name_the_kinds_the_host_acts_on():
    assert error_code(LCDM2000, 0x32).kind is ErrorKind.PICK_UP
    assert error_code(LCDM2000, 0x35).kind is ErrorKind.JAM
    assert error_code(LCDM2000, 0x45).kind is ErrorKind.CASSETTE_MISSING and error_code(LCDM2000, 0x45).cassette == 0
    assert error_code(LCDM2000, 0x38).kind is ErrorKind.CASSETTE_EMPTY
    assert error_code(LCDM2000, 0x44).kind is ErrorKind.TOO_MANY_REJECTS
    assert error_code(LCDM2000, 0x3F).kind is ErrorKind.NO_REJECT_TRAY
    assert error_code(LCDM2000, 0x31).ok and error_code(LCDM2000, 0x30).ok
    assert error_code(LCDM4000, 0x21).kind is ErrorKind.PICK_UP
    assert error_code(LCDM4000, 0x24).kind is ErrorKind.JAM
    assert error_code(LCDM4000, 0x44).kind is ErrorKind.CASSETTE_MISSING
    assert error_code(LCDM4000, 0x2D).kind is ErrorKind.TOO_MANY_REJECTS
    assert error_code(LCDM4000, 0x46).kind is ErrorKind.NO_REJECT_TRAY
    assert error_code(LCDM4000, 0x61).cassette == 1
    unknown = error_code(LCDM4000, 0x7E)
    assert unknown.kind is ErrorKind.HARDWARE and "0x7E" in str(unknown)


def test_decoder_nak_on_a_bad_bcc_and_skips_noise_and_other_units():
    decoder = FrameDecoder(start=SOH, device_id=0x50)
    good = ex("lcdm2000", "purge response")
    spoiled = good[:-1] + bytes((good[-1] ^ 0xFF,))
    other = response(0x30, Cmd4000.RESET, b"\x20")
    items = list(decoder.feed(b"\xAA" + spoiled + other + bytes((NAK,)) + good))
    assert isinstance(items[0], BccError)
    assert items[1] == NAK
    assert isinstance(items[2], Frame) and items[2].encode() == good
    assert len(items) == 3 and decoder.noise == 1


def test_decoder_resyncs_after_a_false_start_byte():
    decoder = FrameDecoder(start=EOT, device_id=0x50)
    good = ex("lcdm2000", "status")
    items = list(decoder.feed(b"\x04\x99" + good))
    assert isinstance(items[0], FrameError)
    assert items[-1] == decode_frame(good)


def test_decoder_takes_frames_split_at_every_byte():
    raw = ex("lcdm4000", "response: 3 out")
    decoder = FrameDecoder(start=SOH, device_id=0x30, length_for=response_length_4000)
    got = []
    for byte in raw:
        got += list(decoder.feed(bytes((byte,))))
    assert got == [decode_frame(raw)]


def test_short_frame_is_salvaged_when_the_unit_goes_quiet():
    decoder = FrameDecoder(start=SOH, device_id=0x30, length_for=response_length_4000)
    short = response(0x30, Cmd4000.DISPENSE, b"\x44")
    assert list(decoder.feed(short)) == [] and decoder.mid_frame
    assert decoder.salvage() == decode_frame(short)
    assert not decoder.mid_frame


@pytest.mark.parametrize("raw", [b"", b"\x04\x50\x02\x46\x03", b"\x05\x50\x02\x46\x03\x12",
                                 b"\x04\x50\x07\x46\x03\x17", b"\x04\x50\x02\x46\x04\x14",
                                 b"\x04\x50\x02\x46\x03\x14"])
def test_decode_frame_refuses_bad_frames_with_a_typed_error(raw):
    with pytest.raises(LcdmProtocolError) as info:
        decode_frame(raw)
    assert isinstance(info.value, ProtocolError)


@pytest.mark.parametrize("parse,frame", [
    (parse_dispense_2000, Frame(SOH, 0x50, Cmd2000.UPPER_DISPENSE, b"0x03000000")),
    (parse_dispense_2000, Frame(SOH, 0x50, Cmd2000.BOTH_DISPENSE, b"0303")),
    (parse_status_2000, Frame(SOH, 0x50, Cmd2000.STATUS, b"00")),
    (parse_rom_2000, Frame(SOH, 0x50, Cmd2000.ROM_VERSION, b"T20")),
    (parse_operation_4000, Frame(SOH, 0x30, Cmd4000.DISPENSE, b"\x20" * 22)),
    (parse_operation_4000, Frame(SOH, 0x30, Cmd4000.LAST_STATUS, b"\x99" + b"\x20" * 14)),
    (parse_status_4000, Frame(SOH, 0x30, Cmd4000.STATUS, b"\x20" * 18)),
])
def test_message_parsers_refuse_frames_that_do_not_fit_the_command(parse, frame):
    with pytest.raises(MessageError):
        parse(frame)


from drivers.lcdm.frames import (parse_ack_4000, parse_diagnostics_4000, parse_nibbles_4000,  # noqa: E402
                                 parse_pick_order_4000)

_PARSERS = (parse_dispense_2000, parse_purge_2000, parse_status_2000, parse_rom_2000,
            parse_operation_4000, parse_status_4000, parse_reset_4000, parse_ack_4000, parse_diagnostics_4000,
            parse_nibbles_4000, parse_pick_order_4000)


@settings(max_examples=400, deadline=None)
@given(data=st.binary(max_size=120), start=st.sampled_from([SOH, EOT]), device=st.sampled_from([0x30, 0x50]),
       by_length=st.booleans(), chunk=st.integers(min_value=1, max_value=40))
def test_decoder_turns_any_bytes_into_frames_control_bytes_or_typed_errors(data, start, device, by_length, chunk):
    decoder = FrameDecoder(start=start, device_id=device, length_for=response_length_4000 if by_length else None)
    for i in range(0, len(data), chunk):
        for item in decoder.feed(data[i:i + chunk]):
            assert isinstance(item, (Frame, int, LcdmProtocolError))
            if isinstance(item, Frame):
                assert item.device_id == device and item.start == start
                assert decode_frame(item.encode()) == item
            elif isinstance(item, int):
                assert item in (ACK, NAK, EOT)
    salvaged = decoder.salvage()
    assert salvaged is None or isinstance(salvaged, Frame)


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=40))
def test_decode_frame_and_parsers_give_a_value_or_a_typed_error(raw):
    try:
        frame = decode_frame(raw)
    except LcdmProtocolError:
        return
    for parse in _PARSERS:
        try:
            parse(frame)
        except MessageError:
            pass


@settings(max_examples=300, deadline=None)
@given(cmd=st.integers(0, 255), data=st.binary(max_size=30))
def test_any_framed_payload_parses_to_a_value_or_a_message_error(cmd, data):
    for device in (0x30, 0x50):
        frame = Frame(SOH, device, cmd, data)
        for parse in _PARSERS:
            try:
                parse(frame)
            except MessageError:
                pass
    try:
        parse_request_2000(cmd, data)
    except MessageError:
        pass
    try:
        parse_request_4000(data)
    except MessageError:
        pass


def test_lcdm4000_settings_commands_are_built_and_checked():
    from drivers.lcdm.frames import (diagnostics_4000, nibbles_4000, parse_nibbles_request_4000,
                                     parse_pick_order_request_4000, pick_order_4000)
    assert nibbles_4000([0x5A, 0, 0xFF, 1]) == bytes.fromhex("35 3A 30 30 3F 3F 30 31")
    assert parse_nibbles_request_4000(nibbles_4000([0x5A, 0, 0xFF, 1])) == (0x5A, 0, 0xFF, 1)
    assert pick_order_4000([4, 3, 2, 1]) == b"4321"
    assert parse_pick_order_request_4000(b"2134") == (2, 1, 3, 4)
    assert diagnostics_4000(3) == b"3"
    for bad in (lambda: nibbles_4000([256, 0, 0, 0]), lambda: nibbles_4000([1, 2]), lambda: pick_order_4000([1, 1, 2, 3]),
                lambda: diagnostics_4000(5), lambda: parse_pick_order_request_4000(b"12"),
                lambda: parse_nibbles_request_4000(b"\x40" * 8)):
        with pytest.raises(MessageError):
            bad()
