"""A minimal kiosk process for the crash test: Id003Validator against a simulator URL,
with the kiosk's real journal (atm.journal.Journal: escrow decision before STACK,
record_credit as the CreditRecorder), and a SIGKILL between the credit and its ACK.
Not a test module itself.

usage: crash_child.py URL JOURNAL TX_ID MODE
  MODE: normal | kill-before-record | kill-after-record
  kill-after-record dies at the journal's own crash point (ATM_CRASH_AT=credit_recorded),
  right after the credit is durable and before the driver can acknowledge VEND VALID.
"""

from __future__ import annotations

import os
import signal
import sys

from atm.fault_injection import CrashPoints
from atm.journal import Journal
from drivers.id003.driver import Id003Validator
from hal.events import NoteEscrowed


def main() -> int:
    url, journal_path, tx_id, mode = sys.argv[1:5]
    journal = Journal(journal_path, CrashPoints("credit_recorded" if mode == "kill-after-record" else ""))
    if journal.open_transaction_id() is None:
        journal.open_buy(tx_id, "bc1qcrashtestaddress0000000000000000000000", "EUR")
    driver = Id003Validator(url, poll_interval=0.02, reply_timeout=0.15)

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
