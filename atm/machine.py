"""The kiosk's behaviour as a declared table: states, triggers, guards, timeouts.

Read this file to know what the kiosk can do; `atm diagram` draws it. The
callbacks named here live on atm.kiosk.Kiosk. Rules the table keeps (and
tests/atm/test_machine_table.py checks):
- no automatic `to_<state>` triggers: every move is a row here;
- every state a customer can see has a timeout, and a `timeout` row out of it;
- every row out of a buy state that could move money names its guard;
- once cash is credited, every way out of the cash screen leads to sending;
  the one exception is `journal_failed`: with no journal no money step may run,
  so the kiosk stops where it is and the restart's recovery settles the cash;
- a note on its way (told to stack, not settled) holds the cash screen only
  until `note_resolved`, which the kiosk fires within its two bounds.
"""

from __future__ import annotations

from typing import Any

from transitions.extensions.asyncio import HierarchicalAsyncMachine, NestedAsyncState

# Nested names join with "_": state "buy" child "cash" is "buy_cash".
SEP = "_"


class KioskState(NestedAsyncState):
    """A state that carries its timeout (seconds, looked up by key in the kiosk's
    timeouts) and whether a customer sees it; the kiosk arms the timer on entry."""

    def __init__(self, *args: Any, timeout_key: str | None = None, customer: bool = False, **kwargs: Any) -> None:
        self.timeout_key = timeout_key
        self.customer = customer
        super().__init__(*args, **kwargs)


STATES: list[dict[str, Any]] = [
    {"name": "booting"},
    {"name": "idle", "customer": True, "timeout_key": "recheck", "on_enter": "enter_idle"},
    {"name": "buy", "on_exit": "leave_buy", "children": [
        {"name": "scan", "customer": True, "timeout_key": "scan", "on_enter": "enter_scan", "on_exit": "leave_scan"},
        {"name": "cash", "customer": True, "timeout_key": "cash", "on_enter": "enter_cash", "on_exit": "leave_cash"},
        {"name": "confirm", "customer": True, "timeout_key": "confirm", "on_enter": "enter_confirm"},
        {"name": "sending", "customer": True, "timeout_key": "sending", "on_enter": "enter_sending"},
        {"name": "receipt", "customer": True, "timeout_key": "receipt", "on_enter": "enter_receipt"},
    ]},
    {"name": "sell", "on_exit": "leave_cash_out", "children": [
        {"name": "amount", "customer": True, "timeout_key": "confirm", "on_enter": "enter_sell_amount"},
        {"name": "invoice", "customer": True, "timeout_key": "sending", "on_enter": "enter_sell_invoice"},
        {"name": "pay", "customer": True, "timeout_key": "payment", "on_enter": "enter_sell_pay"},
        {"name": "dispensing", "customer": True, "timeout_key": "dispense", "on_enter": "enter_sell_dispensing"},
        {"name": "receipt", "customer": True, "timeout_key": "receipt", "on_enter": "enter_cash_out_receipt"},
    ]},
    {"name": "redeem", "on_exit": "leave_cash_out", "children": [
        {"name": "scan", "customer": True, "timeout_key": "scan", "on_enter": "enter_redeem_scan",
         "on_exit": "leave_scan"},
        {"name": "checking", "customer": True, "timeout_key": "sending", "on_enter": "enter_redeem_checking"},
        {"name": "dispensing", "customer": True, "timeout_key": "dispense"},
        {"name": "receipt", "customer": True, "timeout_key": "receipt", "on_enter": "enter_cash_out_receipt"},
    ]},
    {"name": "out", "children": [
        {"name": "fault", "customer": True, "timeout_key": "recheck", "on_enter": "enter_out_of_service"},
        {"name": "door", "customer": True, "timeout_key": "recheck", "on_enter": "enter_out_of_service"},
        {"name": "deactivated", "customer": True, "timeout_key": "recheck", "on_enter": "enter_out_of_service"},
    ]},
    {"name": "maintenance", "children": [
        {"name": "login", "customer": True, "timeout_key": "scan", "on_enter": "enter_login"},
        {"name": "menu", "customer": True, "timeout_key": "maintenance", "on_enter": "enter_menu",
         "on_exit": "leave_menu"},
    ]},
]

# Rows are tried in order; the first whose guards pass wins.
TRANSITIONS: list[dict[str, Any]] = [
    # start-up: recovery has run; go where the kiosk's health says
    {"trigger": "booted", "source": "booting", "dest": "out_deactivated", "conditions": "is_deactivated"},
    {"trigger": "booted", "source": "booting", "dest": "out_door", "conditions": "is_door_open"},
    {"trigger": "booted", "source": "booting", "dest": "out_fault", "unless": "is_healthy"},
    {"trigger": "booted", "source": "booting", "dest": "idle"},

    # idle
    {"trigger": "start_buy", "source": "idle", "dest": "buy_scan", "conditions": "can_start_buy"},
    {"trigger": "timeout", "source": "idle", "dest": None, "after": "reset_language"},

    # buy: scan the wallet address
    {"trigger": "scanned", "source": "buy_scan", "dest": "buy_cash", "conditions": "accept_address"},
    {"trigger": "scanned", "source": "buy_scan", "dest": None, "after": "refresh_screen"},  # refused: error shown
    {"trigger": "cancel", "source": "buy_scan", "dest": "idle"},
    {"trigger": "timeout", "source": "buy_scan", "dest": "idle"},

    # buy: insert cash (credits arrive as `credited`; escrow is decided outside the table)
    {"trigger": "credited", "source": "buy_cash", "dest": None, "after": "refresh_cash"},
    {"trigger": "finish_cash", "source": "buy_cash", "dest": "buy_confirm",
     "conditions": ["has_credit", "nothing_in_flight", "reaches_minimum"]},
    {"trigger": "cancel", "source": "buy_cash", "dest": "idle", "unless": ["has_credit", "anything_in_flight"]},
    {"trigger": "cancel", "source": "buy_cash", "dest": "buy_confirm", "conditions": ["has_credit", "nothing_in_flight"]},
    {"trigger": "cancel", "source": "buy_cash", "dest": None, "after": "wait_for_note"},  # a note is moving: bounded wait
    {"trigger": "timeout", "source": "buy_cash", "dest": "idle", "unless": ["has_credit", "anything_in_flight"]},
    {"trigger": "timeout", "source": "buy_cash", "dest": "buy_sending", "conditions": ["has_credit", "nothing_in_flight"]},
    {"trigger": "timeout", "source": "buy_cash", "dest": None, "after": "rearm_timeout"},  # a note is still moving
    {"trigger": "fault", "source": "buy_cash", "dest": "buy_sending", "conditions": ["has_credit", "nothing_in_flight"]},
    {"trigger": "fault", "source": "buy_cash", "dest": "out_fault", "unless": ["has_credit", "anything_in_flight"]},
    {"trigger": "door_opened", "source": "buy_cash", "dest": "buy_sending", "conditions": ["has_credit", "nothing_in_flight"]},
    {"trigger": "door_opened", "source": "buy_cash", "dest": "out_door", "unless": ["has_credit", "anything_in_flight"]},
    {"trigger": "door_opened", "source": "buy_cash", "dest": None, "after": "wait_for_note"},
    {"trigger": "service", "source": "buy_cash", "dest": "buy_sending", "conditions": ["has_credit", "nothing_in_flight"]},
    {"trigger": "service", "source": "buy_cash", "dest": "maintenance_login", "unless": ["has_credit", "anything_in_flight"]},
    {"trigger": "service", "source": "buy_cash", "dest": None, "after": "wait_for_note"},
    # a stalled note was settled, returned or parked (atm.kiosk's two bounds): the screen moves on
    {"trigger": "note_resolved", "source": "buy_cash", "dest": "buy_sending", "conditions": ["has_credit", "nothing_in_flight"]},
    {"trigger": "note_resolved", "source": "buy_cash", "dest": "idle", "unless": ["has_credit", "anything_in_flight"]},

    # buy: confirm the amount (cancel or timeout still sends: the cash is the customer's)
    {"trigger": "credited", "source": "buy_confirm", "dest": None, "after": "refresh_screen"},
    {"trigger": "confirm", "source": "buy_confirm", "dest": "buy_sending", "conditions": ["has_credit", "quote_is_fresh"]},
    {"trigger": "confirm", "source": "buy_confirm", "dest": None, "after": "refresh_flow_quote"},  # stale: shown again
    {"trigger": "cancel", "source": "buy_confirm", "dest": "buy_sending", "conditions": "has_credit"},
    {"trigger": "timeout", "source": "buy_confirm", "dest": "buy_sending", "conditions": "has_credit"},
    {"trigger": "fault", "source": "buy_confirm", "dest": "buy_sending", "conditions": "has_credit"},
    {"trigger": "door_opened", "source": "buy_confirm", "dest": "buy_sending", "conditions": "has_credit"},

    # buy: coins on their way (the CAS call runs as a task; its result comes back as an event)
    {"trigger": "sent", "source": "buy_sending", "dest": "buy_receipt"},
    {"trigger": "timeout", "source": "buy_sending", "dest": "buy_receipt"},  # journaled: retried in the background

    # buy: receipt
    {"trigger": "done", "source": "buy_receipt", "dest": "idle", "conditions": "is_healthy"},
    {"trigger": "done", "source": "buy_receipt", "dest": "out_fault", "unless": "is_healthy"},
    {"trigger": "timeout", "source": "buy_receipt", "dest": "idle", "conditions": "is_healthy"},
    {"trigger": "timeout", "source": "buy_receipt", "dest": "out_fault", "unless": "is_healthy"},
    {"trigger": "sent", "source": ["buy_receipt", "idle", "out", "maintenance"], "dest": None, "after": "refresh_screen"},

    # sell: choose an amount the cassettes can pay (nothing is committed yet)
    {"trigger": "start_sell", "source": "idle", "dest": "sell_amount", "conditions": "can_start_sell"},
    {"trigger": "choose_amount", "source": "sell_amount", "dest": "sell_invoice", "conditions": "accept_amount"},
    {"trigger": "choose_amount", "source": "sell_amount", "dest": None, "after": "refresh_screen"},  # refused
    {"trigger": "cancel", "source": "sell_amount", "dest": "idle"},
    {"trigger": "timeout", "source": "sell_amount", "dest": "idle"},
    {"trigger": "fault", "source": "sell_amount", "dest": "out_fault"},
    {"trigger": "door_opened", "source": "sell_amount", "dest": "out_door"},
    # sell: the CAS gives a deposit address derived from the signed xpub (else refused)
    {"trigger": "invoiced", "source": "sell_invoice", "dest": "sell_pay"},
    {"trigger": "sell_refused", "source": "sell_invoice", "dest": "sell_receipt"},
    {"trigger": "timeout", "source": "sell_invoice", "dest": "sell_receipt", "after": "sell_invoice_late"},
    # sell: the address is shown; every way out ends in a payout or a redeem code
    {"trigger": "paid", "source": "sell_pay", "dest": "sell_dispensing"},
    {"trigger": "unpaid", "source": "sell_pay", "dest": "sell_receipt", "before": "sell_unpaid"},            # under/late: the signed policy
    {"trigger": "expired", "source": "sell_pay", "dest": "sell_receipt", "before": "sell_no_proof"},
    {"trigger": "cancel", "source": "sell_pay", "dest": "sell_receipt", "before": "sell_no_proof"},
    {"trigger": "timeout", "source": "sell_pay", "dest": "sell_receipt", "before": "sell_no_proof"},
    {"trigger": "refresh", "source": "sell_pay", "dest": None, "after": "refresh_screen"},
    # sell: dispensing (the rest after rejects stays here; an unknown outcome parks, never resends)
    {"trigger": "dispensed", "source": "sell_dispensing", "dest": "sell_receipt"},
    {"trigger": "timeout", "source": "sell_dispensing", "dest": "sell_receipt", "before": "dispense_timed_out"},
    {"trigger": "done", "source": ["sell_receipt", "redeem_receipt"], "dest": "idle", "conditions": "is_healthy"},
    {"trigger": "done", "source": ["sell_receipt", "redeem_receipt"], "dest": "out_fault", "unless": "is_healthy"},
    {"trigger": "timeout", "source": ["sell_receipt", "redeem_receipt"], "dest": "idle", "conditions": "is_healthy"},
    {"trigger": "timeout", "source": ["sell_receipt", "redeem_receipt"], "dest": "out_fault", "unless": "is_healthy"},

    # redeem: scan a code printed by an earlier sale
    {"trigger": "start_redeem", "source": "idle", "dest": "redeem_scan", "conditions": "can_start_redeem"},
    {"trigger": "scanned", "source": "redeem_scan", "dest": "redeem_checking"},
    {"trigger": "cancel", "source": "redeem_scan", "dest": "idle"},
    {"trigger": "timeout", "source": "redeem_scan", "dest": "idle"},
    {"trigger": "fault", "source": "redeem_scan", "dest": "out_fault"},
    {"trigger": "door_opened", "source": "redeem_scan", "dest": "out_door"},
    {"trigger": "dispensing", "source": "redeem_checking", "dest": "redeem_dispensing"},
    {"trigger": "redeem_refused", "source": "redeem_checking", "dest": "redeem_receipt"},
    {"trigger": "timeout", "source": "redeem_checking", "dest": None, "after": "rearm_timeout"},  # the check ends
    {"trigger": "dispensed", "source": "redeem_dispensing", "dest": "redeem_receipt"},
    {"trigger": "timeout", "source": "redeem_dispensing", "dest": "redeem_receipt", "before": "dispense_timed_out"},

    # out of service and back
    {"trigger": "fault", "source": ["idle", "buy_scan"], "dest": "out_fault"},
    {"trigger": "door_opened", "source": ["idle", "buy_scan", "out_fault", "out_deactivated"], "dest": "out_door"},
    {"trigger": "deactivate", "source": ["idle", "buy_scan", "out_fault", "out_door"], "dest": "out_deactivated"},
    {"trigger": "recheck", "source": ["out_fault", "out_door", "idle"], "dest": "out_door", "conditions": "is_door_open"},
    {"trigger": "recheck", "source": ["out_fault", "out_door", "idle"], "dest": "out_fault", "unless": "is_healthy"},
    {"trigger": "recheck", "source": ["out_fault", "out_door"], "dest": "idle", "conditions": "is_healthy"},
    {"trigger": "activate", "source": "out_deactivated", "dest": "idle", "conditions": ["is_healthy", "is_active"]},
    {"trigger": "timeout", "source": ["out_fault", "out_door"], "dest": "idle", "conditions": ["is_healthy", "is_active"]},
    {"trigger": "timeout", "source": "out", "dest": None, "after": "refresh_screen"},

    # maintenance: only the physical service switch fires `service` (no screen action does);
    # `service_login` carries PinGuard's verdict, checked off the table (atm.kiosk)
    {"trigger": "service", "source": ["idle", "out"], "dest": "maintenance_login"},
    {"trigger": "service_login", "source": "maintenance_login", "dest": "maintenance_menu", "conditions": "pin_ok"},
    {"trigger": "service_login", "source": "maintenance_login", "dest": None, "after": "login_refused"},
    {"trigger": "cancel", "source": "maintenance_login", "dest": "idle", "conditions": ["is_healthy", "is_active"]},
    {"trigger": "cancel", "source": "maintenance_login", "dest": "out_fault"},
    {"trigger": "service_exit", "source": "maintenance", "dest": "idle", "conditions": ["is_healthy", "is_active"]},
    {"trigger": "service_exit", "source": "maintenance", "dest": "out_deactivated", "unless": "is_active"},
    {"trigger": "service_exit", "source": "maintenance", "dest": "out_fault"},
    {"trigger": "timeout", "source": "maintenance", "dest": "idle", "conditions": ["is_healthy", "is_active"]},
    {"trigger": "timeout", "source": "maintenance", "dest": "out_fault"},
    {"trigger": "refresh", "source": "maintenance_menu", "dest": None, "after": "refresh_screen"},

    # the journal cannot be written: no money step may run; stop taking cash where we stand
    {"trigger": "journal_failed", "source": ["booting", "idle", "buy", "sell", "redeem", "out_door", "out_deactivated", "maintenance"],
     "dest": "out_fault"},
    {"trigger": "journal_failed", "source": "out_fault", "dest": None, "after": "refresh_screen"},
]

# Triggers the kiosk may fire in any state; in states without a row they are ignored
# (a late credit in idle is still journaled: the table only drives screens).
IGNORABLE = {"credited", "sent", "fault", "recheck", "door_opened", "deactivate", "activate", "refresh", "timeout",
             "scanned", "service", "note_resolved", "journal_failed", "dispensed", "paid", "unpaid", "expired",
             "invoiced", "sell_refused", "dispensing", "redeem_refused"}


class KioskMachine(HierarchicalAsyncMachine):
    state_cls = KioskState


def build_machine(model: Any) -> KioskMachine:
    return KioskMachine(
        model=model,
        states=STATES,
        transitions=TRANSITIONS,
        initial="booting",
        auto_transitions=False,
        queued=True,
        send_event=True,
        ignore_invalid_triggers=False,
        model_override=False,
        after_state_change="on_state_changed",
    )


def all_state_names() -> list[str]:
    names: list[str] = []

    def walk(states: list[dict[str, Any]], prefix: str) -> None:
        for s in states:
            name = prefix + s["name"]
            if "children" in s:
                walk(s["children"], name + SEP)
            else:
                names.append(name)
    walk(STATES, "")
    return names


def state_spec(name: str) -> dict[str, Any]:
    parts = name.split(SEP)
    level = STATES
    spec: dict[str, Any] = {}
    for part in parts:
        spec = next(s for s in level if s["name"] == part)
        level = spec.get("children", [])
    return spec


def mermaid() -> str:
    """The state diagram in Mermaid syntax, generated from the table."""
    def node(n: str) -> str:
        return n.replace(SEP, "_")

    lines = ["stateDiagram-v2", "    [*] --> booting"]
    for row in TRANSITIONS:
        dest = row.get("dest")
        sources = row["source"] if isinstance(row["source"], list) else [row["source"]]
        guards = []
        for key, neg in (("conditions", ""), ("unless", "not ")):
            val = row.get(key)
            if val:
                guards += [neg + g for g in ([val] if isinstance(val, str) else val)]
        label = row["trigger"] + (f" [{', '.join(guards)}]" if guards else "")
        for src in sources:
            target = dest if dest is not None else src
            lines.append(f"    {node(src)} --> {node(target)} : {label}")
    for s in all_state_names():
        spec = state_spec(s)
        if spec.get("timeout_key"):
            lines.append(f"    note right of {node(s)} : timeout {spec['timeout_key']}")
    return "\n".join(lines) + "\n"
