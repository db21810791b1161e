"""A response cache for judge calls, so that a re-run issues zero requests.

Keys are content hashes of everything that determines a reply: the judge's model id,
the rubric hash, the full messages, the sampling parameters (seed included), the
response format and the repeat / attempt index. Values are the reply text and finish
reason. Transport errors (timeouts, refused connections) are *not* cached, so a re-run
retries them; every real reply is, including unparseable ones (their retry uses a new
attempt index, hence a new key).

Stored in SQLite (one file, atomic commits): a killed run keeps every reply it got.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from prefdelta.hashing import stable_hash


class ResponseCache:
    """``key -> (text, finish_reason)`` in a SQLite file; ``None`` path keeps it in memory."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path) if self.path else ":memory:", check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, text TEXT NOT NULL, finish TEXT NOT NULL)"
        )
        self._db.commit()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(*parts: object) -> str:
        """The cache key of a request: a stable hash of every part that shapes the reply."""
        return stable_hash(*parts, length=32)

    def get(self, key: str) -> tuple[str, str] | None:
        with self._lock:
            row = self._db.execute("SELECT text, finish FROM replies WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return row[0], row[1]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            row = self._db.execute("SELECT 1 FROM replies WHERE key = ?", (key,)).fetchone()
        return row is not None

    def put(self, key: str, text: str, finish_reason: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies (key, text, finish) VALUES (?, ?, ?)",
                (key, text, finish_reason),
            )
            self._db.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
