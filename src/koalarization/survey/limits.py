"""How fast new participations may start, and how many there may be: the survey's defence against ballot stuffing.

- The per-client limit keys on the client's **network prefix**, not its exact address: an IPv4 /24 or an IPv6 /64.
  One person controls a whole IPv6 /64 (and often a handful of IPv4 addresses of one provider), so a limit per
  address is defeated by rotating addresses within it.
- The limits are **sized from the survey's target sample** (`ParticipationLimits.for_target`): the cap on the total
  is a little above the target, and the overall burst a fraction of it, so that a stuffer cannot take five times the
  sample in a minute and then lock real people out.
- The buckets **survive a restart**: they are kept in a small SQLite file beside the answers (never in the answers
  database), under keyed hashes of the prefixes, and a prefix's row is deleted as soon as its bucket is full again
  (10 minutes with the defaults). Nothing there names a participant.

With a crowd platform, the platform's participant id is the unit of uniqueness (see `store.Store.create_participant`):
a returning id resumes and is not a new participation, so it is not rate-limited at all.
"""
from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import os
import resource
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .files import SurveySettingsError
from .store import SurveyError

log = logging.getLogger(__name__)

OVERALL = b"*overall*"
IPV4_PREFIX, IPV6_PREFIX = 24, 64


def network_prefix(client: str | None) -> str:
    """The network a client address belongs to, as the per-client limit counts it: IPv4 /24, IPv6 /64 (an
    IPv4-mapped IPv6 address counts as IPv4). Anything that is not an IP address (a test client's name, a Unix
    socket) is its own key."""
    if not client:
        return ""
    try:
        address = ipaddress.ip_address(client.strip("[]"))
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    bits = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: up to `burst` at once, then one more every `every_s` seconds."""

    burst: int
    every_s: float

    def __post_init__(self) -> None:
        if self.burst < 1 or self.every_s <= 0:
            raise SurveySettingsError(f"a rate limit needs burst >= 1 and every_s > 0, not {self.burst},"
                                      f" {self.every_s}")


@dataclass(frozen=True)
class ParticipationLimits:
    """How fast new participants may start, per network prefix and overall, and how many there may be in all.

    The defaults let a class of 10 behind one address start together, then one more a minute from that network;
    200 at once overall, then one every 6 s; 1000 participants in all. A real study sizes them from its target
    sample with `for_target(n)`. Raise `per_client` for a larger group behind one address (a lab, a NAT);
    `max_participants=None` has no cap.
    """

    per_client: RateLimit = field(default_factory=lambda: RateLimit(10, 60.0))
    overall: RateLimit = field(default_factory=lambda: RateLimit(200, 6.0))
    max_participants: int | None = 1000

    def __post_init__(self) -> None:
        if self.max_participants is not None and self.max_participants < 1:
            raise SurveySettingsError(f"max_participants must be at least 1 or None, not {self.max_participants}")

    @classmethod
    def for_target(cls, target: int, per_client: RateLimit | None = None) -> ParticipationLimits:
        """Limits for a survey that wants `target` participants (user_study/PROTOCOL.md, "Limits for a sample of
        N"): at most 1.5 N participants in all (room for people who return a crowd task or stop half-way), half
        the target at once and then the target's pace of N new participants per 10 minutes overall, 10 at once
        and then one a minute per network prefix."""
        if int(target) != target or target < 1:
            raise SurveySettingsError(f"the target sample must be a whole number of participants >= 1, not {target}")
        return cls(per_client=per_client or RateLimit(10, 60.0),
                   overall=RateLimit(max(10, math.ceil(target / 2)), max(1.0, 600.0 / target)),
                   max_participants=math.ceil(1.5 * target))

    def describe(self) -> str:
        """One line for the server's log."""
        cap = self.max_participants or "no cap"
        return (f"new participants: {self.per_client.burst} at once then 1 every {self.per_client.every_s:g} s per "
                f"network (IPv4 /24, IPv6 /64); {self.overall.burst} at once then 1 every {self.overall.every_s:g} s "
                f"overall; at most {cap} in all")


class ParticipationLimiter:
    """Token buckets for new participations, kept in SQLite so that a restart does not refill them.

    `state_path`: the SQLite file (None: in memory, for tests and throw-away servers). Prefixes are stored as keyed
    BLAKE2 hashes (the key lives in the same file) and only while their bucket is not full again.
    """

    def __init__(self, limits: ParticipationLimits, state_path: str | os.PathLike | None = None,
                 clock: Callable[[], float] = time.time):
        self.limits = limits
        self.clock = clock
        self._lock = threading.Lock()
        self.state_path = Path(state_path) if state_path is not None else None
        try:
            if self.state_path is not None:
                self.state_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.state_path or ":memory:"), timeout=30, isolation_level=None,
                                       check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);"
                                   "CREATE TABLE IF NOT EXISTS buckets (key BLOB PRIMARY KEY, tokens REAL NOT NULL,"
                                   " updated REAL NOT NULL);")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('hash_key', ?)", (os.urandom(16),))
            self._key = self._db.execute("SELECT value FROM meta WHERE key = 'hash_key'").fetchone()[0]
        except (sqlite3.Error, OSError) as error:
            where = self.state_path.parent if self.state_path is not None else "memory"
            raise SurveySettingsError(f"cannot keep the rate limits in {where}: {error}") from None

    def check_writable(self) -> None:
        """Raise sqlite3.Error when the limits file cannot be written (for /healthz)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('checked_at', ?)", (str(self.clock()),))
            self._db.execute("COMMIT")

    def admit(self, client: str | None) -> None:
        """Take one token from the client network's bucket and from the overall one, or raise SurveyError(429)
        saying when to come back. Nothing is taken when either bucket is empty."""
        now = self.clock()
        key = hashlib.blake2b(network_prefix(client).encode(), key=self._key, digest_size=16).digest()
        per_client, overall = self.limits.per_client, self.limits.overall
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                mine, everyone = self._load(key, per_client, now), self._load(OVERALL, overall, now)
                waits = [self._wait(mine, per_client), self._wait(everyone, overall)]
                if max(waits) > 0:
                    self._db.execute("ROLLBACK")
                    self._refuse(waits)
                self._save(key, mine - 1, now)
                self._save(OVERALL, everyone - 1, now)
                self._forget_full(now)
                self._db.execute("COMMIT")
            except sqlite3.Error as error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise SurveyError(503, "the survey cannot admit new participants right now; please try again "
                                       "in a minute") from error

    def _load(self, key: bytes, rule: RateLimit, now: float) -> float:
        row = self._db.execute("SELECT tokens, updated FROM buckets WHERE key = ?", (key,)).fetchone()
        if row is None:
            return float(rule.burst)
        tokens, updated = row
        return min(float(rule.burst), tokens + max(0.0, now - updated) / rule.every_s)

    def _save(self, key: bytes, tokens: float, now: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO buckets VALUES (?, ?, ?)", (key, tokens, now))

    def _forget_full(self, now: float) -> None:
        """Delete the per-network buckets that have filled up again: they hold nothing a full bucket does not."""
        rule = self.limits.per_client
        self._db.execute("DELETE FROM buckets WHERE key != ? AND tokens + (? - updated) / ? >= ?",
                         (OVERALL, now, rule.every_s, rule.burst))

    @staticmethod
    def _wait(tokens: float, rule: RateLimit) -> float:
        return 0.0 if tokens >= 1 else (1 - tokens) * rule.every_s

    @staticmethod
    def _refuse(waits: list[float]) -> None:
        wait = max(waits)
        who = "from your network" if waits[0] >= waits[1] else "right now"
        log.warning("new participation refused: rate limit (%s)", "per network" if waits[0] else "overall")
        raise SurveyError(429, f"too many new participants {who}; please try again in {_human(wait)}",
                          headers={"Retry-After": str(max(1, int(wait + 0.999)))})

    def close(self) -> None:
        self._db.close()


def _human(seconds: float) -> str:
    return f"{int(seconds + 0.999)} seconds" if seconds < 120 else f"{int(seconds / 60 + 0.999)} minutes"


# connections ------------------------------------------------------------------------------------------------

def default_limit_concurrency() -> int:
    """A third of the process's descriptor limit after 16 for the process itself (database, logs, libraries), at
    most 256. A third, because the event loop accepts a burst of up to `limit_concurrency` waiting connections
    before the guard can turn the extra ones away: held plus burst must stay under the limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = 4096 if soft == resource.RLIM_INFINITY else soft
    return max(4, min(256, (soft - 16) // 3))


@dataclass(frozen=True)
class ServerLimits:
    """Timeouts and limits of the HTTP server.

    request_timeout: seconds a client has to send one whole request, counted from the connection's opening or the
        previous response (the header/read timeout uvicorn lacks);
    send_timeout: seconds a reply may wait for a client that does not read it (the write timeout uvicorn lacks);
    keep_alive: seconds an idle keep-alive connection is kept after a response (uvicorn's timeout_keep_alive);
    limit_concurrency: connections at which uvicorn answers 503; new connections are refused (or take a stalled
        one's place) one earlier (None: `default_limit_concurrency()`); it is also the listen backlog, so that one
        burst of accepts cannot take more descriptors than that;
    max_header_bytes: largest request line plus headers; larger is a 431.
    """

    request_timeout: float = 10.0
    send_timeout: float = 10.0
    keep_alive: float = 5.0
    limit_concurrency: int | None = None
    max_header_bytes: int = 8 * 1024

    def __post_init__(self) -> None:
        if min(self.request_timeout, self.keep_alive, self.send_timeout) <= 0:
            raise SurveySettingsError("the request, send and keep-alive timeouts must be positive seconds")
        if self.limit_concurrency is not None and self.limit_concurrency < 2:
            raise SurveySettingsError("limit_concurrency must be at least 2")
        if self.max_header_bytes < 1024:
            raise SurveySettingsError("max_header_bytes must be at least 1024")

    @property
    def concurrency(self) -> int:
        """limit_concurrency, or the default for this process's descriptor limit."""
        return self.limit_concurrency or default_limit_concurrency()
