"""The customer's (and the technician's) screens: what the page shows for the kiosk's
current state, as (screen name, data). The composer only reads the kiosk and its flow;
it never changes money state, sends a device command or writes the journal.

Words are never in the data: the page draws them from the language files (atm/locale)
by key, and messages are atm.texts.message() dicts. Amounts are: the flows and the
composer keep them typed (Fiat, Sats, atm.amounts.Rate) and localise() writes every one,
in the data and in its messages, in the screen's number format as the screen leaves the
kiosk (the customer's language can change until money moves, so not before).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping

from hal import DeviceState, Fiat, PaperState
from atm import texts
from atm.amounts import AMOUNT_TYPES, Rate

if TYPE_CHECKING:
    from atm.kiosk import Kiosk

# State of the table -> screen of the page, for the buy and for sell and redeem.
_BUY_SCREENS = {"buy_scan": "scan_address", "buy_cash": "insert_cash", "buy_confirm": "confirm",
                "buy_sending": "sending", "buy_receipt": "receipt"}
_CASH_OUT_SCREENS = {"sell_amount": "sell_amount", "sell_invoice": "sell_wait", "sell_pay": "sell_pay",
                     "sell_dispensing": "dispensing", "sell_receipt": "sell_receipt", "redeem_scan": "redeem_scan",
                     "redeem_checking": "redeem_wait", "redeem_dispensing": "dispensing",
                     "redeem_receipt": "redeem_receipt"}


class ScreenComposer:
    """Builds the screen for a state of the kiosk (atm.kiosk.Kiosk), reading its state."""

    def __init__(self, kiosk: "Kiosk") -> None:
        self.kiosk = kiosk

    def compose(self, state: str) -> tuple[str, dict[str, Any]]:
        """The screen's name and data for `state`, amounts written in the screen's language."""
        name, data = self._compose(state)
        return name, localise(data, data.get("language") or texts.DEFAULT_LANGUAGE)

    def _compose(self, state: str) -> tuple[str, dict[str, Any]]:
        k = self.kiosk
        timeout_s = k.seconds_left()
        common = {"language": k.language, "operator": {"name": k.config.operator_name,
                                                       "contact": k.config.operator_contact}}
        if state == "booting":
            return "booting", common
        if state == "idle":
            quote = k.pricing.fresh()
            rate = Rate(quote.rate, k.config.currency) if quote else None
            return "idle", {**common, **self.offer(), "rate": rate, "buy_enabled": k.can_start_buy(),
                            "sell_enabled": k.can_start_sell(), "redeem_enabled": k.can_start_redeem(),
                            "languages": self.language_choice(), "notice": self.idle_notice(),
                            "timeout_s": None}
        screen = _BUY_SCREENS.get(state)
        if screen is not None:
            data = k.flow.screen_data(screen) if k.flow is not None else {}
            if screen in ("scan_address", "insert_cash"):
                data = {**self.offer(), **data}
            if screen == "scan_address":
                data["languages"] = self.language_choice()
            if screen in ("insert_cash", "confirm"):
                data["receipt_available"] = self.receipt_available()
            if screen == "insert_cash" and k.flow is not None and k.flow.tx_id:
                data["notes_in"] = [Fiat(v, k.config.currency)
                                    for v in k.journal.credited_notes(k.flow.tx_id)]
            if screen == "receipt":
                data["printed"] = bool(k.last_receipt_printed)
                data.update(self.receipt_proof())
            return screen, {**common, **data, "timeout_s": timeout_s}
        cash_out = _CASH_OUT_SCREENS.get(state)
        if cash_out is not None:
            data = k.flow.screen_data(cash_out) if k.flow is not None else {}
            if cash_out.endswith("receipt"):
                data["printed"] = bool(k.last_receipt_printed)
            return cash_out, {**common, **data, "timeout_s": timeout_s}
        if state.startswith("out_"):
            # the customer reads who to call; the technical reason is in the service menu and alerts
            return "out_of_service", {**common, "kind": state.removeprefix("out_"), "timeout_s": None}
        if state == "maintenance_login":
            return "maintenance_login", {**common, "language": k.config.language, "error": k.login_error,
                                         "locked_for_s": round(k.pin_guard.locked_for()),
                                         "timeout_s": timeout_s}
        if state == "maintenance_menu":
            return "maintenance", {**k.service_status(), **common, "language": k.config.language,
                                   "timeout_s": timeout_s}
        return "booting", common

    def idle_notice(self) -> dict[str, Any] | None:
        """Why no purchase may start now, as a message for the customer, or None."""
        paused = self.kiosk.paused()
        return texts.message(paused[0]) if paused else None

    def language_choice(self) -> list[dict[str, str]]:
        """The languages to offer, each named in itself (from its own language file)."""
        return [{"code": code, "name": texts.text(code, "language.name")} for code in self.kiosk.languages()]

    def offer(self) -> dict[str, Any]:
        """What a customer must know before any money moves: price with fees, fee terms,
        limits, the notes taken, whether a receipt can be printed."""
        k = self.kiosk
        currency = k.config.currency
        notes = [d for d in k.denominations if d.currency == currency]
        return {**k.pricing.terms(), "currency": currency, "notes": sorted(notes),
                "receipt_available": self.receipt_available()}

    def receipt_proof(self) -> dict[str, Any]:
        """The transaction id as a QR (SVG, drawn here: the page loads nothing from outside),
        and the date, for a customer to photograph when no paper came out."""
        tx_id = self.kiosk.tx_id
        if not tx_id:
            return {}
        import segno
        return {"tx_id": tx_id, "tx_qr": segno.make(tx_id, error="m").svg_data_uri(scale=6, border=2),
                "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")}

    def receipt_available(self) -> bool:
        """Promise a receipt only to a printer that is online with paper."""
        k = self.kiosk
        health = k.device_health().get("printer")
        return (k.devices.printer is not None and health is not None
                and health.state in (DeviceState.ONLINE, DeviceState.BUSY) and k.paper != PaperState.OUT)


def localise(value: Any, language: str) -> Any:
    """`value` (screen data, an action's reply) with every amount in it written in
    `language`'s number format (atm.amounts through atm.texts.shown): an amount becomes
    its text, a list of amounts a list of texts (the page joins them), and a message's
    list of amounts (a tuple, atm.texts.message) one text. Everything else is unchanged;
    the result is plain JSON data."""
    if isinstance(value, AMOUNT_TYPES):
        return texts.shown(language, value)
    if isinstance(value, Mapping):
        return {key: localise(inner, language) for key, inner in value.items()}
    if isinstance(value, tuple) and all(isinstance(item, AMOUNT_TYPES) for item in value):
        return texts.shown(language, value)
    if isinstance(value, (list, tuple)):
        return [localise(item, language) for item in value]
    return value
