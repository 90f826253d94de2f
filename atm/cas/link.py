"""CasLink: the one CAS link object the running kiosk holds. It delegates everything to
the client in use (a CasClient, or the stand-in/simulator in simulate mode) and can
replace that client with one paired from a new pairing code, without a restart.

Why a holder: the kiosk hands its CAS object to Pricing, Settlement, the flows and the
service menu. Swapping the client behind one object switches them all at once; nothing
else keeps a reference to the client. Optional parts keep the client's semantics:
`getattr(link, "sell_invoice", None)` is None exactly when the client in use has none.

The switch (`pair_and_switch`), in this order, every step before the last reversible:
1. The refusal check: nothing is switched while a transaction or a dispense is open, since
   a send journaled for the old CAS must be asked again of that CAS with the same id,
   never of another (asked before pairing, so a refusal does not spend the one-time token,
   and again after it).
2. `atm.cas.pairing.pair` into a staging folder (`<state>/pairing-new`): a wrong pin, a
   used token or a CAS that is down changes nothing, and the old link keeps running.
3. The old link gets a bounded last try to upload what it has queued, then is stopped
   (its store must be closed before its files move).
4. What the new CAS state starts with is prepared in the staging folder:
   - the same operator key and kiosk id (the operator moved their CAS): the signed bundle,
     its version floor, the command sequence and the queued uploads are carried over, so
     the new CAS can neither roll the configuration back nor replay an old signed command,
     and nothing queued is lost;
   - another operator key: nothing is carried. The old operator's bundle is not used (a
     bundle the kiosk holds is only ever taken if signed by the key it trusts now), so the
     kiosk sells nothing until the new operator's signed bundle arrives (the kiosk shows
     "waiting for the operator's signed configuration"). The old operator's queued uploads
     (its customers' transaction summaries, alerts) are theirs, not the new operator's:
     they stay in the old state, counted on the Pairing page and alerted; the kiosk's own
     journal holds every transaction anyway.
5. The old CAS files move to `<state>/previous/<UTC time>/` (pairing.json first), the
   staged ones into the state folder (pairing.json last). A power cut before the old
   pairing.json moved restarts on the old pairing; after it, `finish_interrupted_switch`
   (run by atm.app before the client is built) archives what is left of the old files
   and installs the staged pairing.
6. The new client is built from the state folder (CasClient.from_state), gets the hooks
   and is started. If that fails, the files go back, the old client is rebuilt and
   started, and the failure is raised (the service menu shows it and alerts). Should
   even that fail, the link becomes `Unlinked`: no settings, every request
   CasUnavailable, so the kiosk sells nothing and keeps every send in its journal.

`atm cas pair` (kiosk stopped) uses the same file steps: `install_staged_pairing`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from atm.cas.errors import PairingFailed, crash_site
from atm.cas.interface import CasError, CasRefused, CasUnavailable, KioskSettings, Quote, SendResult
from atm.cas.pairing import PairingResult, pair
from atm.cas.state import (BUNDLE_FILE, CERT_FILE, DB_FILE, KEY_FILE, PAIRING_FILE, PairingRecord, Store,
                           load_pairing)
from atm.cas.signing import DocumentError, strict_json
from hal.money import Sats

log = logging.getLogger("atm.cas.link")

STAGING_DIR = "pairing-new"
PREVIOUS_DIR = "previous"
# Everything of one pairing in the state folder; pairing.json last, it is the commit point.
PAIRING_FILES = (DB_FILE, DB_FILE + "-wal", DB_FILE + "-shm", BUNDLE_FILE, KEY_FILE, CERT_FILE, PAIRING_FILE)
# What one operator's continuity needs (atm.cas.client store keys): versions only go up,
# signed commands are never replayed, a deactivation stays one.
CARRIED_META = ("bundle_version_floor", "command_sequence", "handled_commands", "remote_state")
OUTBOX_KINDS = ("alert", "event", "tx")
DRAIN_S = 15.0          # the old CAS's last chance to take its queued uploads
DRAIN_BATCHES = 50
_CLIENT_OPTIONS = ("poll_interval_s", "timeout_s", "upload_batch", "backoff_base_s", "backoff_cap_s",
                   "rate_max_age_s")


class SwitchRefused(CasRefused):
    """The new pairing cannot be put in use now (a transaction or dispense is open)."""


@dataclass(frozen=True)
class SwitchReport:
    pairing: PairingResult
    same_operator: bool             # the new pairing trusts the same operator key for the same kiosk
    carried: int                    # queued uploads carried over to the new CAS
    left_behind: int                # queued uploads kept for the previous CAS (another operator's)
    previous_url: str | None
    archive: Path | None            # where the previous pairing's files are kept


def finish_interrupted_switch(state_dir: Path) -> bool:
    """Complete a switch cut by a power loss after the old files moved away and before
    the new pairing.json moved in: the staged pairing (complete, registered with its CAS)
    is installed. True if it did so. Called before the client is built at start."""
    state_dir = Path(state_dir)
    staging = state_dir / STAGING_DIR
    if (state_dir / PAIRING_FILE).exists() or not all((staging / n).exists() for n in (PAIRING_FILE, KEY_FILE,
                                                                                         CERT_FILE)):
        return False
    _archive(state_dir)                  # what the cut left of the old pairing (its store, bundle)
    _move_files(staging, state_dir)
    log.warning("%s: a pairing switch cut short was completed from %s", state_dir, staging)
    return True


def install_staged_pairing(state_dir: Path, staging: Path) -> tuple[bool, Path | None]:
    """The file steps of a switch for `atm cas pair` (the kiosk stopped): the pairing
    staged in `staging` replaces the one in `state_dir` by the rules of the module
    docstring (carried over for the same operator, archived otherwise). Returns (same
    operator, where the previous pairing's files are kept)."""
    state_dir, staging = Path(state_dir), Path(staging)
    new = load_pairing(staging)
    try:
        old: PairingRecord | None = load_pairing(state_dir)
    except CasError:
        old = None
    same_operator = old is not None and old.operator_key == new.operator_key and old.kiosk_id == new.kiosk_id
    carried = CasLink._carry(state_dir, staging) if same_operator else {}
    archive = _archive(state_dir)
    _move_files(staging, state_dir)
    if archive is not None and carried:
        CasLink._acknowledge_carried(archive, carried)
    shutil.rmtree(staging, ignore_errors=True)
    return same_operator, archive


def _archive(state_dir: Path) -> Path | None:
    """Move the pairing files in `state_dir` (if any) to a new previous/<UTC time> folder."""
    if not any((state_dir / name).exists() for name in PAIRING_FILES):
        return None
    folder = state_dir / PREVIOUS_DIR / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    while folder.exists():
        folder = folder.with_name(folder.name + "-1")
    folder.mkdir(parents=True, mode=0o700)
    try:
        _move_files(state_dir, folder, pairing_first=True)
    except OSError:
        _move_files(folder, state_dir)          # half moved is worse than not moved
        raise
    return folder


def previous_pairings(state_dir: Path) -> list[dict[str, Any]]:
    """The pairings this kiosk left, newest first: CAS url and uploads still queued for it."""
    root = Path(state_dir) / PREVIOUS_DIR
    out = []
    for folder in sorted((p for p in root.glob("*") if p.is_dir()), reverse=True):
        url = None
        try:
            url = strict_json((folder / PAIRING_FILE).read_bytes(), str(folder / PAIRING_FILE)).get("cas_url")
        except (DocumentError, OSError, AttributeError):
            pass
        queued = 0
        if (folder / DB_FILE).exists():
            try:
                store = Store(folder / DB_FILE)
                try:
                    queued = store.queue_length()
                finally:
                    store.close()
            except Exception as exc:        # a damaged old store must not hide the others
                log.error("%s: queued uploads cannot be counted (%s)", folder, crash_site(exc))
        out.append({"cas_url": url if isinstance(url, str) else None, "queued_uploads": queued,
                    "kept_in": str(folder)})
    return out


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_files(source: Path, target: Path, *, pairing_first: bool = False) -> list[str]:
    """Move the pairing files present in `source` to `target`: pairing.json last when a
    pairing moves in (it makes the folder paired), first when one moves out."""
    moved = []
    for name in (PAIRING_FILES[::-1] if pairing_first else PAIRING_FILES):
        if (source / name).exists():
            os.replace(source / name, target / name)
            moved.append(name)
    _fsync_dir(target)
    _fsync_dir(source)
    return moved


class CasLink:
    """Implements atm.cas.interface.CasService by delegating to the client in use."""

    def __init__(self, client: Any, *, pairing_dir: Path | None = None,
                 build: Callable[..., Any] | None = None) -> None:
        self._client = client
        # Where a new pairing goes when the client in use has no state folder of its own
        # (the stand-in of simulate mode): the configuration's [cas] state_dir.
        self._pairing_dir = Path(pairing_dir) if pairing_dir is not None else None
        self._build = build
        self._on_command: Callable[[str, dict], Awaitable[None]] | None = None
        self._on_settings: Callable[[KioskSettings], None] | None = None
        self._started = False
        self._lock = asyncio.Lock()
        self._previous: list[dict[str, Any]] | None = None

    # ---- delegation -----------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only reached for what CasLink itself lacks: the client's optional parts
        # (sell_invoice, is_reachable, report_alert, status, ...), looked up on the
        # client in use at each access.
        if name.startswith("__") or name in ("_client",):
            raise AttributeError(name)
        return getattr(self._client, name)

    @property
    def client(self) -> Any:
        return self._client

    async def quote(self, currency: str) -> Quote:
        return await self._client.quote(currency)

    async def send_coins(self, request_id: str, address: str, amount: Sats) -> SendResult:
        return await self._client.send_coins(request_id, address, amount)

    async def upload_transaction(self, record: Mapping[str, Any]) -> None:
        await self._client.upload_transaction(record)

    def settings(self) -> KioskSettings | None:
        # Always the client in use: never a bundle the previous link held.
        return self._client.settings()

    @property
    def on_command(self) -> Callable[[str, dict], Awaitable[None]] | None:
        return self._on_command

    @on_command.setter
    def on_command(self, hook: Callable[[str, dict], Awaitable[None]] | None) -> None:
        self._on_command = hook
        self._wire(self._client)

    @property
    def on_settings(self) -> Callable[[KioskSettings], None] | None:
        return self._on_settings

    @on_settings.setter
    def on_settings(self, hook: Callable[[KioskSettings], None] | None) -> None:
        self._on_settings = hook
        self._wire(self._client)

    async def start(self) -> None:
        await self._start(self._client)
        self._started = True

    async def stop(self) -> None:
        self._started = False
        await self._stop(self._client)

    @staticmethod
    async def _start(client: Any) -> None:
        start = getattr(client, "start", None)
        if start is not None:
            await start()

    @staticmethod
    async def _stop(client: Any) -> None:
        stop = getattr(client, "stop", None)
        if stop is not None:
            await stop()

    def _wire(self, client: Any) -> None:
        """Hand the kiosk's hooks to `client` (the one in use, or the next one)."""
        if hasattr(client, "on_command"):
            client.on_command = self._on_command
        if hasattr(client, "on_settings"):
            client.on_settings = self._on_settings

    # ---- pairing ----------------------------------------------------------------------

    @property
    def pairing_dir(self) -> Path:
        own = getattr(self._client, "state_dir", None)
        if isinstance(own, Path) and hasattr(self._client, "kiosk_id"):
            return own
        if self._pairing_dir is None:
            raise PairingFailed("this kiosk's server link has no CAS state folder to pair into; "
                                "set [cas] state_dir in the configuration")
        return self._pairing_dir

    def in_use(self) -> dict[str, Any] | None:
        """The pairing the link uses now (from the client's own record), or None."""
        record = getattr(self._client, "record", None)
        if not isinstance(record, PairingRecord):
            return None
        from atm.cas.signing import key_id, parse_public_key
        return {"kiosk_id": record.kiosk_id, "cas_url": record.cas_url, "cas_pins": list(record.cas_pins),
                "operator_key_id": key_id(parse_public_key(record.operator_key))}

    def previous(self) -> list[dict[str, Any]]:
        if self._previous is None:
            try:
                self._previous = previous_pairings(self.pairing_dir)
            except CasError:
                self._previous = []
        return self._previous

    def _client_options(self) -> dict[str, Any]:
        return {name: getattr(self._client, name) for name in _CLIENT_OPTIONS if hasattr(self._client, name)}

    def _new_client(self, state_dir: Path, options: dict[str, Any]) -> Any:
        if self._build is not None:
            return self._build(state_dir, **options)
        from atm.cas.client import CasClient
        return CasClient.from_state(state_dir, **options)

    async def pair_and_switch(self, code: str, busy: Callable[[], str | None] = lambda: None) -> SwitchReport:
        """Pair from the operator's code and put the new CAS in use (module docstring).
        PairingCodeError/PairingFailed: nothing changed; SwitchRefused: something is open;
        PairingFailed after the pairing registered: the old link was restored and runs."""
        async with self._lock:
            why = busy()
            if why:
                raise SwitchRefused(why)
            state_dir = self.pairing_dir
            staging = state_dir / STAGING_DIR
            shutil.rmtree(staging, ignore_errors=True)         # a left-over attempt is never used
            try:
                result = await pair(code, staging)
                new_record = load_pairing(staging)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            why = busy()
            if why:
                shutil.rmtree(staging, ignore_errors=True)
                raise SwitchRefused(why)
            return await self._switch(state_dir, staging, result, new_record)

    async def _switch(self, state_dir: Path, staging: Path, result: PairingResult,
                      new_record: PairingRecord) -> SwitchReport:
        old = self._client
        options = self._client_options()
        old_record = getattr(old, "record", None)
        previous_url = old_record.cas_url if isinstance(old_record, PairingRecord) else None
        same_operator = (isinstance(old_record, PairingRecord) and old_record.operator_key == new_record.operator_key
                         and old_record.kiosk_id == new_record.kiosk_id)
        self._pairing_dir = state_dir        # where the next pairing goes, whatever happens now
        await self._drain(old)
        # From here until the new client is in use, whatever the kiosk asks is answered
        # "unavailable" (kept and asked again later), never by a client being stopped.
        self._client = Unlinked(f"{state_dir}: the CAS link is being switched to {result.cas_url}")
        await self._stop(old)
        carried: dict[str, dict[str, int]] = {}
        archive: Path | None = None
        installed = False
        try:
            if same_operator:
                carried = self._carry(state_dir, staging)
            archive = _archive(state_dir)
            installed = True
            _move_files(staging, state_dir)
            new = self._new_client(state_dir, options)
            self._wire(new)
            if self._started:
                await self._start(new)
        except Exception as exc:
            log.error("the new CAS link could not be started (%s); going back to %s", crash_site(exc), previous_url)
            restored = await self._restore(state_dir, staging, archive, old,
                                           options, installed=installed)
            raise PairingFailed(f"paired with {result.cas_url}, but the new link could not be started "
                                f"({type(exc).__name__}: {exc}); " + (
                                    f"the kiosk keeps using {previous_url or 'its previous server link'}" if restored
                                    else "the previous link could not be restored either: the kiosk has no "
                                         "server link until it is paired again")) from None
        self._client = new
        shutil.rmtree(staging, ignore_errors=True)
        if archive is not None and carried:
            self._acknowledge_carried(archive, carried)
        self._previous = None
        left = 0
        if archive is not None and not same_operator and (archive / DB_FILE).exists():
            store = Store(archive / DB_FILE)
            try:
                left = store.queue_length()
            finally:
                store.close()
        log.warning("CAS link switched to %s (operator key %s)%s", result.cas_url, result.operator_key_id,
                    f"; {left} uploads kept for {previous_url} in {archive}" if left else "")
        return SwitchReport(pairing=result, same_operator=same_operator,
                            carried=sum(len(v) for v in carried.values()), left_behind=left,
                            previous_url=previous_url, archive=archive)

    async def _drain(self, old: Any) -> None:
        """A bounded last try to hand the old CAS what it has queued."""
        flush, queued = getattr(old, "flush_once", None), getattr(old, "queue_length", None)
        if flush is None or queued is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_S
        for _ in range(DRAIN_BATCHES):
            left = deadline - loop.time()
            if queued() == 0 or left <= 0:
                return
            try:
                await asyncio.wait_for(flush(), left)
            except (CasError, asyncio.TimeoutError) as exc:
                log.info("the previous CAS took not all queued uploads (%s)", type(exc).__name__)
                return

    @staticmethod
    def _carry(state_dir: Path, staging: Path) -> dict[str, dict[str, int]]:
        """Same operator: the bundle, its continuity keys and the queued uploads go with
        the new pairing (into the staged store). Returns what was carried, per kind."""
        if (state_dir / BUNDLE_FILE).exists():
            shutil.copyfile(state_dir / BUNDLE_FILE, staging / BUNDLE_FILE)
        if not (state_dir / DB_FILE).exists():
            return {}
        old, new = Store(state_dir / DB_FILE), Store(staging / DB_FILE)
        carried: dict[str, dict[str, int]] = {}
        try:
            for name in CARRIED_META:
                value = old.get(name)
                if value is not None:
                    new.put(name, value)
            for kind in OUTBOX_KINDS:
                items = old.pending(kind, 1_000_000)
                if items:
                    new.enqueue_many(kind, items)
                    carried[kind] = {key: version for key, version, _body in items}
        finally:
            old.close()
            new.close()
        return carried

    @staticmethod
    def _acknowledge_carried(archive: Path, carried: dict[str, dict[str, int]]) -> None:
        # Only once the new store is in place: until then the old store is their home.
        store = Store(archive / DB_FILE)
        try:
            for kind, held in carried.items():
                store.acknowledge(kind, held)
        finally:
            store.close()

    async def _restore(self, state_dir: Path, staging: Path, archive: Path | None, old: Any,
                       options: dict[str, Any], *, installed: bool) -> bool:
        """Undo a switch whose new client would not start: the new files (if they were
        installed) back to the staging folder, then dropped; the old ones (if they were
        archived) back; the old link rebuilt and started. False if that failed too."""
        try:
            if installed:
                _move_files(state_dir, staging, pairing_first=True)
            if archive is not None:
                _move_files(archive, state_dir)
                shutil.rmtree(archive, ignore_errors=True)
            shutil.rmtree(staging, ignore_errors=True)
            restored = old
            if isinstance(getattr(old, "record", None), PairingRecord):
                restored = self._new_client(state_dir, options)   # the old one's store is closed
            self._wire(restored)
            if self._started:
                await self._start(restored)
            self._client = restored
            return True
        except Exception as exc:
            log.critical("the previous CAS link could not be restored either (%s): the kiosk has no server link "
                         "until it is paired again", crash_site(exc))
            self._client = Unlinked(f"{state_dir}: no CAS link (a pairing switch failed and the previous link "
                                    "could not be restored); pair the kiosk again from the service menu")
            return False


class Unlinked:
    """No client: while a switch runs, and after one that could neither start the new
    client nor restore the old one. No settings (so nothing sells), every request
    CasUnavailable (a send stays in the journal and is asked again later), instead of a
    stopped client's crashes."""

    def __init__(self, why: str) -> None:
        self._why = why

    def settings(self) -> None:
        return None

    async def quote(self, currency: str) -> Quote:
        raise CasUnavailable(self._why)

    async def send_coins(self, request_id: str, address: str, amount: Sats) -> SendResult:
        raise CasUnavailable(self._why)

    async def upload_transaction(self, record: Mapping[str, Any]) -> None:
        raise CasUnavailable(self._why)

    def is_reachable(self, max_offline_s: float) -> bool:
        return False

    def status(self) -> dict[str, Any]:
        return {"paired": False, "reachable": False, "last_error": self._why}
