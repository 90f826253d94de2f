"""What every transaction flow (buy now; sell and redeem next) offers the kiosk.

A flow is one customer's transaction of one kind: it owns the money rules
(quote, fees, limits, cash in or out, settlement, receipt) and writes its own
journal facts. The kiosk only routes: it asks the flow the table's guards,
hands it the device events that belong to a transaction, and draws the
screen data the flow returns. No screen, timer or state-table code lives here.

Adding a kind (sell, redeem) means: a TransactionFlow subclass with `kind` set, its
journal facts (Journal.open_transaction(kind, ...); dispense intents and outcomes,
deposits and redeem codes have their tables already), its recovery at start
(Kiosk.recover calls each kind's; atm.settlement recovers buys only), rows and
screens in atm/machine.py and the UI. The buy stays as it is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from atm.cas.interface import CasService, KioskSettings
from atm.config import Config
from atm.journal import Journal
from hal.events import Event

# alert(kind, text, severity): the kiosk's one way to tell the operator
Alert = Callable[[str, str, str], None]


@dataclass
class FlowContext:
    """What a flow may use; built once by the kiosk and shared by its flows."""

    config: Config
    journal: Journal
    cas: CasService
    settings: Callable[[], KioskSettings | None]
    alert: Alert


class TransactionFlow(ABC):
    """One transaction. Subclasses set `kind` (the journal's transaction type)."""

    kind: ClassVar[str]

    def __init__(self, ctx: FlowContext) -> None:
        self.ctx = ctx
        self.tx_id: str | None = None        # set once the transaction is journaled
        self.message: dict[str, Any] | None = None   # last thing to tell the customer: atm.texts.message()
        self.language: str | None = None     # the customer's language (receipts); None: the kiosk's default

    # -- the table's guards ------------------------------------------------------------

    @abstractmethod
    def has_money_in(self) -> bool:
        """The customer's money is committed (credited cash, dispensed notes, a payment):
        every way out of the transaction must now lead to settling it."""

    @abstractmethod
    def money_in_flight(self) -> bool:
        """A device is moving money whose outcome the journal does not know yet."""

    def why_not(self, action: str) -> dict[str, Any] | None:
        """Why a customer action this flow's guards refused cannot happen now, as an
        atm.texts.message() for the customer (None: the kiosk's generic answer)."""
        return None

    # -- events ------------------------------------------------------------------------

    async def on_event(self, event: Event) -> str | None:
        """A device event of this transaction; returns the trigger to fire, if any."""
        return None

    # -- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    def abandon(self) -> None:
        """The customer left before any money moved: close the transaction as canceled."""

    @abstractmethod
    async def settle(self) -> None:
        """Finish the money side (send coins, confirm a dispense). Raises CasError when
        the server is away: the journal keeps what is owed, a later call finishes it."""

    @abstractmethod
    def screen_data(self, screen: str) -> dict[str, Any]:
        """Data for one of this flow's screens."""
