"""A minimal kiosk process for the SIGKILL tests: runs SspValidator on a port with the real
money journal (atm.journal.Journal): the escrow decision is journaled before STACK, and
Journal.record_credit is the CreditRecorder. It then hangs at a chosen point so the test can
kill it there. Progress markers are journal facts, read by the test from the same file.

    python kiosk_process.py PORT JOURNAL MODE
MODE: "hang-in-recorder"  the credit reply arrived, the recorder never returns (nothing written)
      "hang-after-record" the recorder made the credit durable, the next poll never goes out
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from atm.journal import Journal  # noqa: E402
from drivers.ssp.driver import SspValidator  # noqa: E402
from hal.events import NoteCredited, NoteEscrowed  # noqa: E402

TX_ID = "tx-before-kill"
DEVICE = "validator"


def main() -> None:
    port, journal_path, mode = sys.argv[1:4]
    hang = threading.Event()
    journal = Journal(journal_path)
    journal.open_buy(TX_ID, "bc1qtestaddressbeforekill", "EUR")
    driver = SspValidator(port, name=DEVICE, poll_interval=0.03, reply_timeout=0.2)

    def recorder(event: NoteCredited) -> None:
        if mode == "hang-in-recorder":
            journal.record_fact("test_recorder_entered", TX_ID, code=event.code)
            hang.wait()
        journal.record_credit(event)

    def sink(event: object) -> None:
        if isinstance(event, NoteEscrowed) and event.value is not None:
            # Journal the decision before the command that lets the unit stack.
            journal.escrow_decided(DEVICE, event.code, event.value, "stack", TX_ID)
            driver.stack()
        elif isinstance(event, NoteCredited) and mode == "hang-after-record":
            journal.record_fact("test_sink_credited", TX_ID, code=event.code)
            hang.wait()

    driver.set_credit_recorder(recorder)
    driver.open(sink)
    driver.enable()
    if not driver.wait_applied(10):
        raise SystemExit("validator did not take the enable command")
    journal.record_fact("test_ready")
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
