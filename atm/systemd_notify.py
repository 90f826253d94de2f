"""Tells systemd how the kiosk is doing (the sd_notify protocol): READY=1 once it
serves, WATCHDOG=1 from a task on the kiosk's own event loop, STOPPING=1 on the way
out. One AF_UNIX datagram to $NOTIFY_SOCKET per message, no library; without that
variable (a shell, the tests, a container) every call does nothing.

The pings come from the event loop on purpose: a loop stuck in a callback stops
them, and systemd (WatchdogSec= in systemd/atm-kiosk.service) restarts the kiosk."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Mapping

log = logging.getLogger(__name__)


def _address(environ: Mapping[str, str]) -> str | None:
    address = environ.get("NOTIFY_SOCKET", "")
    if not address:
        return None
    # "@name" is a Linux abstract socket: the name starts with a NUL byte.
    return "\0" + address[1:] if address.startswith("@") else address


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification; True if it was sent, False if there is nowhere to send it
    or the send failed (logged: the kiosk keeps running, systemd may then restart it)."""
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode("ascii"))
    except OSError as exc:
        log.warning("systemd notification %r not sent to NOTIFY_SOCKET=%s: %s",
                    message.split("=", 1)[0], address.lstrip("\0"), exc)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of systemd's WatchdogSec, as sd_watchdog_enabled
    advises), or None when systemd expects none from this process."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0 or _address(env) is None:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (our parent, say)
    return int(usec) / 1_000_000 / 2


class Watchdog:
    """READY=1, then WATCHDOG=1 every `interval` seconds from a task on the running loop."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self.interval = watchdog_interval(self._environ)
        self._task: asyncio.Task | None = None

    def ready(self) -> None:
        notify("READY=1", self._environ)
        if self.interval is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._ping(self.interval),
                                                                name="systemd-watchdog")

    async def _ping(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1", self._environ)
            await asyncio.sleep(interval)

    async def stopping(self) -> None:
        notify("STOPPING=1", self._environ)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
