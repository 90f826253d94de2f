"""A minimal kiosk process for the crash test: runs Id003Validator against a
simulator URL with a write-ahead sqlite journal, and can SIGKILL itself between
recording a credit and acknowledging VEND VALID. Not a test module itself.

usage: crash_child.py URL JOURNAL MODE   (MODE: normal | kill-before-record | kill-after-record)
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys

from drivers.id003.driver import Id003Validator
from hal.events import NoteEscrowed


def main() -> int:
    url, journal_path, mode = sys.argv[1:4]
    db = sqlite3.connect(journal_path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS escrow (id INTEGER PRIMARY KEY, code TEXT, minor INTEGER, decision TEXT)")
    db.execute("CREATE TABLE IF NOT EXISTS credit (escrow_id INTEGER PRIMARY KEY, minor INTEGER)")
    driver = Id003Validator(url, poll_interval=0.02, reply_timeout=0.15)

    def sink(event):
        if isinstance(event, NoteEscrowed) and event.value is not None:
            # The decision is journaled before STACK is sent.
            db.execute("INSERT INTO escrow (code, minor, decision) VALUES (?, ?, 'stack')",
                       (event.code, event.value.minor))
            driver.stack()

    def recorder(event):
        # Keyed by what the journal knows: the last stack decision. ID-003 does not
        # repeat the denomination at VEND VALID, so after a restart the value comes
        # from the journal, not from the event.
        row = db.execute("SELECT id, minor FROM escrow WHERE decision = 'stack' ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            raise RuntimeError("vend valid without a stack decision in the journal")
        if db.execute("SELECT 1 FROM credit WHERE escrow_id = ?", (row[0],)).fetchone():
            return
        if mode == "kill-before-record":
            os.kill(os.getpid(), signal.SIGKILL)
        db.execute("INSERT INTO credit (escrow_id, minor) VALUES (?, ?)", (row[0], row[1]))
        if mode == "kill-after-record":
            os.kill(os.getpid(), signal.SIGKILL)

    driver.set_credit_recorder(recorder)
    driver.open(sink)
    driver.enable()
    print("READY", flush=True)
    sys.stdin.readline()
    driver.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
