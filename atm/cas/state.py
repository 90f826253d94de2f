"""The CAS client's state dir: the pairing record (both trust anchors), the kiosk key
and certificate, the bundle in force, and a SQLite store (WAL, synchronous=FULL) for
the upload outbox, counters and the refusal log. Files only; no network.

Layout: pairing.json, kiosk.key (0600), kiosk.crt, bundle.json, cas.sqlite.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from atm.cas.errors import NotPaired
from atm.cas.signing import DocumentError, parse_public_key, strict_json

PAIRING_FILE = "pairing.json"
KEY_FILE = "kiosk.key"
CERT_FILE = "kiosk.crt"
BUNDLE_FILE = "bundle.json"
DB_FILE = "cas.sqlite"


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True)
class PairingRecord:
    kiosk_id: str
    cas_url: str
    cas_pins: tuple[str, ...]
    operator_key: str
    paired_at: int
    kiosk_cert_pin: str = ""

    def to_json(self) -> bytes:
        data = asdict(self)
        data["cas_pins"] = list(self.cas_pins)
        return json.dumps(data, indent=2, sort_keys=True).encode("utf-8")


def load_pairing(state_dir: Path) -> PairingRecord:
    path = state_dir / PAIRING_FILE
    if not path.exists():
        raise NotPaired(f"{path}: this kiosk is not paired with a CAS; pair it from the operator's pairing "
                        f"code with `atm cas pair` (typed with --code, or scanned with --scan-source)")
    try:
        data = strict_json(path.read_bytes(), str(path))
        record = PairingRecord(kiosk_id=data["kiosk_id"], cas_url=data["cas_url"],
                               cas_pins=tuple(data["cas_pins"]), operator_key=data["operator_key"],
                               paired_at=data["paired_at"], kiosk_cert_pin=data.get("kiosk_cert_pin", ""))
        parse_public_key(record.operator_key, f"{path} operator_key")
    except (DocumentError, KeyError, TypeError, OSError) as exc:
        raise NotPaired(f"{path}: pairing record unreadable ({exc}); pair the kiosk again") from None
    for name in (KEY_FILE, CERT_FILE):
        if not (state_dir / name).exists():
            raise NotPaired(f"{state_dir / name}: kiosk key or certificate missing; pair the kiosk again")
    return record


def save_pairing(state_dir: Path, record: PairingRecord) -> None:
    atomic_write(state_dir / PAIRING_FILE, record.to_json())


class Store:
    """Outbox, key/value counters and refusal log in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS outbox (
                kind TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
                body TEXT NOT NULL, queued_at REAL NOT NULL, PRIMARY KEY (kind, key));
            CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS refusals (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, what TEXT NOT NULL,
                reason TEXT NOT NULL, detail TEXT NOT NULL);
        """)

    def close(self) -> None:
        self._db.close()

    def enqueue(self, kind: str, key: str, version: int, body: Any) -> None:
        self.enqueue_many(kind, [(key, version, body)])

    def enqueue_many(self, kind: str, items: Iterable[tuple[str, int, Any]]) -> None:
        rows = [(kind, key, version, json.dumps(body, separators=(",", ":"), sort_keys=True), time.time())
                for key, version, body in items]
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            # A lower version never replaces a higher one still waiting: versions only go up.
            self._db.executemany(
                "INSERT INTO outbox (kind, key, version, body, queued_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (kind, key) DO UPDATE SET version = excluded.version, body = excluded.body "
                "WHERE excluded.version > outbox.version", rows)

    def pending(self, kind: str, limit: int) -> list[tuple[str, int, Any]]:
        cur = self._db.execute("SELECT key, version, body FROM outbox WHERE kind = ? ORDER BY queued_at, key LIMIT ?",
                               (kind, limit))
        return [(key, version, json.loads(body)) for key, version, body in cur.fetchall()]

    def acknowledge(self, kind: str, held: dict[str, int]) -> None:
        """Drop queued items the server now holds at the same or a higher version."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM outbox WHERE kind = ? AND key = ? AND version <= ?",
                                 [(kind, key, version) for key, version in held.items()])

    def queue_length(self, kind: str | None = None) -> int:
        if kind is None:
            return self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        return self._db.execute("SELECT COUNT(*) FROM outbox WHERE kind = ?", (kind,)).fetchone()[0]

    def get(self, name: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else row[0]

    def put(self, name: str, value: str) -> None:
        self._db.execute("INSERT INTO meta (name, value) VALUES (?, ?) "
                         "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (name, value))

    def log_refusal(self, what: str, reason: str, detail: str) -> None:
        self._db.execute("INSERT INTO refusals (at, what, reason, detail) VALUES (?, ?, ?, ?)",
                         (time.time(), what, reason, detail))

    def refusals(self, limit: int = 50) -> list[dict[str, Any]]:
        cur = self._db.execute("SELECT at, what, reason, detail FROM refusals ORDER BY seq DESC LIMIT ?", (limit,))
        return [{"at": at, "what": what, "reason": reason, "detail": detail} for at, what, reason, detail in cur]
