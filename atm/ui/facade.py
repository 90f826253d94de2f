"""What the UI server needs from the kiosk, and nothing more.

The kiosk publishes a *screen*: `{"screen": NAME, "data": {...}, "seq": N}`.
The page renders it and sends back *actions*: `{"action": NAME, ...}`. The
kiosk validates every action against its current state; the page is never
trusted with money. Screen names and their data are listed in docs/ui.md.

Since the transaction flows (atm/flows), before any note goes in the `idle`,
`scan_address` and `insert_cash` screens also carry the fee terms and the
effective price: `fee_percent` ("5"), `fixed_fee` ("1.00 EUR"), `price_per_btc`
("52,631.58 EUR/BTC", percent fee included; null without a fresh rate), `min`
and `max`. `insert_cash` adds `fee` (for the cash so far); `can_finish` is false
below the minimum purchase. `confirm` adds `fixed_fee_waived` (the purchase ended
below the minimum) and `message` (e.g. "The price was updated..."): a stale
quote is refreshed and shown again, and the first `confirm` on it is refused.
`receipt_available` is true only while the printer is online with paper.
"""

from __future__ import annotations

import asyncio
from typing import Any, Mapping, Protocol


class KioskFacade(Protocol):
    def snapshot(self) -> dict[str, Any]:
        """The current screen."""

    def subscribe(self) -> "asyncio.Queue[dict[str, Any]]":
        """A queue that receives every new screen from now on."""

    def unsubscribe(self, queue: "asyncio.Queue[dict[str, Any]]") -> None: ...

    async def handle_action(self, message: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a customer or technician action. Returns {"ok": bool, "error": str?}.
        Unknown or malformed actions are refused with a reason, never raised."""


class PreviewRefused(Exception):
    """Why the kiosk has no camera picture to give (`str(exc)`), with the HTTP status the
    UI server answers: 404 (menu not open, no camera), 409 (scan test not running), 503
    (no frame yet)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class CameraPreview(Protocol):
    """Optional on a KioskFacade: the service menu's camera picture (GET /service/camera.jpg)."""

    async def service_camera_preview(self) -> bytes:
        """A JPEG of what the scanner's camera sees, only while the service menu is open
        and its scan test runs; raises PreviewRefused otherwise."""


class SimulatorPanel(Protocol):
    """Simulate mode only: the control surface of the simulated devices."""

    def commands(self) -> list[dict[str, Any]]:
        """[{"command": "insert_note", "args": {"minor": "int"}, "help": "..."}, ...]"""

    async def run(self, command: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Run one control command. Returns {"ok": bool, "error"?: str, ...}."""

    def state(self) -> dict[str, Any]:
        """What each simulated device looks like now (notes inserted, paper, door...)."""
