"""No exception kills the client's background work (poll, upload): it is logged by type
and place only (no message, which could carry a secret or what a hostile server sent)
and the loop goes on with backoff."""

from __future__ import annotations

import logging
import sqlite3

from .conftest import FAST, wait_until

SECRET = "pin=4711-token-s3cret"


async def test_upload_loop_survives_a_failing_store_and_delivers_later(operator, caplog):
    """Mutation caught: the store read at the top of the upload loop outside the guard
    (as it was) lets one disk error end the upload task for good."""
    client = operator.client(**FAST)
    real = client._store.queue_length
    failures = {"left": 3}

    def flaky(kind=None):
        if failures["left"]:
            failures["left"] -= 1
            raise sqlite3.OperationalError(f"disk I/O error {SECRET}")
        return real(kind)

    client._store.queue_length = flaky
    try:
        with caplog.at_level(logging.INFO, "atm.cas"):
            await client.start()
            await wait_until(lambda: failures["left"] == 0, what="the store failures")
            await client.report_alert("tamper", {"switch": "top"})
            await wait_until(lambda: [a["kind"] for a in operator.cas.alerts()] == ["tamper"],
                             what="the alert uploaded after the failures")
        assert all(not task.done() for task in client._tasks)
    finally:
        await client.stop()
    crashes = [r.getMessage() for r in caplog.records if "upload crashed" in r.getMessage()]
    assert crashes and all("OperationalError at" in line for line in crashes)
    assert not any(SECRET in r.getMessage() or (r.exc_text and SECRET in r.exc_text) for r in caplog.records)


async def test_poll_loop_survives_a_crash_and_takes_the_next_bundle(operator, caplog):
    client = operator.client(**FAST)
    real = client.poll_once
    failures = {"left": 2}

    async def flaky():
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError(f"unexpected {SECRET}")
        return await real()

    client.poll_once = flaky
    try:
        with caplog.at_level(logging.INFO, "atm.cas"):
            await client.start()
            await wait_until(lambda: client.settings() is not None, what="bundle 1 after the crashes")
            operator.publish(max_buy_minor=80_000)
            await wait_until(lambda: client.settings().version == 2, what="bundle 2")
    finally:
        await client.stop()
    assert sum("poll crashed (RuntimeError at" in r.getMessage() for r in caplog.records) == 2
    assert not any(SECRET in r.getMessage() or (r.exc_text and SECRET in r.exc_text) for r in caplog.records)


async def test_kiosk_callback_that_raises_does_not_undo_the_bundle_or_stop_polling(operator):
    client = operator.client(**FAST)
    calls = []

    def on_settings(settings):
        calls.append(settings.version)
        raise RuntimeError("kiosk bug")

    client.on_settings = on_settings
    try:
        await client.start()
        await wait_until(lambda: calls == [1], what="bundle 1 handed to the kiosk")
        operator.publish(max_buy_minor=80_000)
        await wait_until(lambda: calls == [1, 2], what="bundle 2 handed to the kiosk")
        assert client.settings().version == 2
    finally:
        await client.stop()


async def test_command_whose_judgement_crashes_is_refused_acknowledged_and_the_poll_goes_on(operator, client,
                                                                                            monkeypatch):
    """Mutation caught: the per-command guard in poll_once removed (a parser gap in
    command judgement then ends every poll before its bundle check, as the lone
    surrogate did)."""
    import atm.cas.client as client_module

    def broken_decide(*args, **kwargs):
        raise TypeError(f"parser gap {SECRET}")

    monkeypatch.setattr(client_module, "decide", broken_decide)
    await client.poll_once()
    operator.cas.queue_command("kiosk-1", operator.sign_command("activate"))
    operator.publish(max_buy_minor=80_000)
    await client.poll_once()
    assert client.settings().version == 2
    assert [(r["what"], r["reason"]) for r in client.status()["refusals"]] == [("command", "malformed")]
    assert SECRET not in client.status()["refusals"][0]["detail"]
    await client.poll_once()
    assert operator.cas.commands["kiosk-1"] == []
    assert operator.cas.command_acks[-1]["result"] == "refused"
