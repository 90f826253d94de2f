"""A minimal kiosk process for the polled-validator crash test: the protocol's driver against
a simulator URL, with the kiosk's real journal (atm.journal.Journal: escrow decision before
STACK, record_credit as the CreditRecorder), able to SIGKILL itself inside the recorder
before the journal write, or right after it (before the driver's ACK). Not a test module.

usage: polled_crash_child.py PROTOCOL URL JOURNAL TX_ID MODE
  PROTOCOL: id003 | ccnet
  MODE: normal | kill-before-record | kill-after-record
  kill-after-record dies at the journal's own crash point (ATM_CRASH_AT=credit_recorded),
  right after the credit is durable and before the driver can acknowledge the settled event.
"""

from __future__ import annotations

import os
import signal
import sys

from atm.fault_injection import CrashPoints
from atm.journal import Journal
from drivers.ccnet.driver import CcnetValidator
from drivers.id003.driver import Id003Validator
from hal.events import NoteEscrowed

DRIVERS = {"id003": Id003Validator, "ccnet": CcnetValidator}


def main() -> int:
    protocol, url, journal_path, tx_id, mode = sys.argv[1:6]
    journal = Journal(journal_path, CrashPoints("credit_recorded" if mode == "kill-after-record" else ""))
    if journal.open_transaction_id() is None:
        journal.open_buy(tx_id, "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", "EUR")
    driver = DRIVERS[protocol](url, poll_interval=0.02, reply_timeout=0.15)

    def sink(event):
        if isinstance(event, NoteEscrowed) and event.value is not None:
            # Journal before acting: the decision is durable before STACK is sent.
            journal.escrow_decided(event.device, event.code, event.value, "stack", tx_id)
            driver.stack()

    def recorder(event):
        if mode == "kill-before-record":
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
