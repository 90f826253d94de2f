"""A minimal kiosk process for the SIGKILL tests: runs SspValidator on a port, journals the
escrow decision and the credit the way the application must (append + fsync), and then
hangs at a chosen point so the test can kill it there.

    python kiosk_process.py PORT JOURNAL MODE
MODE: "hang-in-recorder"  the credit reply arrived, the recorder never returns
      "hang-after-record" the recorder made the credit durable, the next poll never goes out
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from drivers.ssp.driver import SspValidator  # noqa: E402
from hal.events import NoteCredited, NoteEscrowed  # noqa: E402


def journal(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def main() -> None:
    port, journal_path, mode = sys.argv[1:4]
    hang = threading.Event()
    driver = SspValidator(port, poll_interval=0.03, reply_timeout=0.2)

    def recorder(event: NoteCredited) -> None:
        if mode == "hang-in-recorder":
            journal(journal_path, f"recorder-entered {event.code} {event.value.minor}")
            hang.wait()
        journal(journal_path, f"credit {event.code} {event.value.minor}")

    def sink(event: object) -> None:
        if isinstance(event, NoteEscrowed) and event.value is not None:
            # Journal the decision before the command that lets the unit stack.
            journal(journal_path, f"decided-stack {event.code} {event.value.minor}")
            driver.stack()
        elif isinstance(event, NoteCredited) and mode == "hang-after-record":
            journal(journal_path, f"sink-credited {event.code} {event.value.minor}")
            hang.wait()

    driver.set_credit_recorder(recorder)
    driver.open(sink)
    driver.enable()
    if not driver.wait_applied(10):
        raise SystemExit("validator did not take the enable command")
    journal(journal_path, "ready")
    while True:
        time.sleep(60)


if __name__ == "__main__":
    main()
