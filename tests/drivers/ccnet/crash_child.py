"""A minimal kiosk process for the crash test: CcnetValidator against a simulator URL with
the real atm.journal.Journal as its CreditRecorder, able to SIGKILL itself inside the
recorder before the journal write, or right after it (before the ACK). Not a test module.

usage: crash_child.py URL JOURNAL MODE
  MODE: first-kill-before-write | first-kill-after-write | restart
"""

from __future__ import annotations

import os
import signal
import sys

from atm.fault_injection import CrashPoints
from atm.journal import Journal
from drivers.ccnet.driver import CcnetValidator
from hal.events import NoteEscrowed

TX = "tx-crash-1"


def main() -> int:
    url, journal_path, mode = sys.argv[1:4]
    # The journal's own crash point fires after the credit is committed, before the driver's ACK.
    journal = Journal(journal_path, crash_points=CrashPoints("credit_recorded" if mode == "first-kill-after-write"
                                                             else ""))
    if mode != "restart":
        journal.open_buy(TX, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "EUR")
    driver = CcnetValidator(url, poll_interval=0.02, reply_timeout=0.15)

    def sink(event):
        if isinstance(event, NoteEscrowed) and event.value is not None:
            journal.escrow_decided(event.device, event.code, event.value, "stack", TX)
            driver.stack()

    def recorder(event):
        if mode == "first-kill-before-write":
            os.kill(os.getpid(), signal.SIGKILL)
        journal.record_credit(event)

    driver.set_credit_recorder(recorder)
    driver.open(sink)
    driver.enable()
    print("READY", flush=True)
    sys.stdin.readline()
    driver.close()
    journal.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
