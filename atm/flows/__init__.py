"""Transaction flows: one object per transaction kind (buy now; sell and redeem to
come), each owning its money rules and journal facts. See atm.flows.base."""

from atm.flows.base import FlowContext, TransactionFlow
from atm.flows.buy import BuyFlow

__all__ = ["BuyFlow", "FlowContext", "TransactionFlow"]
