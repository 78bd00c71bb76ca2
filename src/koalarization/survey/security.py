"""The survey's defences that are not about a single field: response headers, body size, cross-site posts, and
how fast new participations may be started.

- `SecurityHeaders` wraps the *whole* ASGI app (outside Starlette's error middleware), so every response, a 404,
  a 422 or a 500 included, carries the same security headers and `Cache-Control: no-store`.
- `same_origin` refuses form posts that another site makes a participant's browser send.
- `ParticipationLimiter` is a token bucket per client address plus one for everybody, and a cap on the total, so
  one client cannot stuff the ballot with hundreds of participants.
"""
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from fastapi import Request

from .files import SurveySettingsError
from .store import SurveyError

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    # same-origin, not no-referrer: with no-referrer a browser sends `Origin: null` on our own form posts, which
    # would make them indistinguishable from a sandboxed cross-site frame. Other sites still get no Referer, so
    # the participant id in our URLs never leaves the survey.
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_REPLACED = {name for name, _ in SECURITY_HEADERS}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def with_security_headers(headers):
    """`headers` (ASGI pairs) with ours in place of any the app set under the same names."""
    return [(name, value) for name, value in headers if name.lower() not in _REPLACED] + SECURITY_HEADERS


class SecurityHeaders:
    """ASGI wrapper: add the security headers to every response, and refuse bodies over `max_bytes` (413) or with
    a malformed Content-Length (400) before any handler runs.

    It reads the whole (small) body first, so a body that streams past the limit is refused before any work, and
    a handler never sees half a body.
    """

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_security_headers(list(message.get("headers", [])))}
            await send(message)

        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            numeric = declared.isdigit() and len(declared) <= 18  # bytes.isdigit() is ASCII-only
            if not numeric or int(declared) > self.max_bytes:
                return await self._refuse(send_with_headers, numeric)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._refuse(send_with_headers, True)
        body = b"".join(chunks)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)

    async def _refuse(self, send, numeric):
        status = 413 if numeric else 400
        text = (f'{{"error": "request body larger than {self.max_bytes} bytes"}}' if numeric
                else '{"error": "malformed Content-Length header"}').encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(text)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": text})


# cross-site posts ------------------------------------------------------------------------------------------------

def same_origin(request: Request) -> None:
    """Refuse a state-changing request that a browser sends on behalf of another site (cross-site request forgery).

    Why a check of `Origin` (then `Referer`, then `Sec-Fetch-Site`) rather than a CSRF token: every browser in use
    sends `Origin` on a cross-site POST, and `Sec-Fetch-Site` besides, so the check needs no server-side state, no
    extra cookie and no hidden field, and it keeps working when a participant reloads a page or comes back from
    another device with only the link. A token would have to be tied to a session that the survey deliberately
    does not have (a participant is only a random id in the link). A request with none of the three headers does
    not come from a browser form and cannot carry a victim's cookie on another site's behalf, so it is allowed
    (scripted clients of the JSON API). `Origin: null` (sandboxed frames, data: URLs) is refused.

    The host compared against is the request's Host header, plus the origins given as `public_origins` (the
    address behind a TLS proxy, for example).
    """
    if request.method in SAFE_METHODS:
        return
    host = request.headers.get("host", "")
    allowed = request.app.state.context.public_origins

    def ours(url):
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        return bool(parts.netloc) and (parts.netloc == host or origin in allowed)

    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    fetch_site = request.headers.get("sec-fetch-site")
    if origin is not None:
        trusted = origin != "null" and ours(origin)
    elif referer is not None:
        trusted = ours(referer)
    else:
        trusted = fetch_site in (None, "same-origin", "none")
    if not trusted:
        log.warning("refused a cross-site %s to %s", request.method, request.url.path)
        raise SurveyError(403, "this form was sent from another web site; open the survey link directly instead")


# new participations ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RateLimit:
    """A token bucket: up to `burst` at once, then one more every `every_s` seconds."""

    burst: int
    every_s: float

    def __post_init__(self):
        if self.burst < 1 or self.every_s <= 0:
            raise SurveySettingsError(f"a rate limit needs burst >= 1 and every_s > 0, not {self.burst},"
                                      f" {self.every_s}")


@dataclass(frozen=True)
class ParticipationLimits:
    """How fast new participants may start, per client address and overall, and how many there may be in all.

    The defaults let a class of 10 behind one address start together, then one more a minute from that address;
    200 at once overall, then one every 6 s (600 an hour); 1000 participants in all (the paper had about 41).
    Raise `per_client` for a larger group behind one address (a lab, a NAT); `max_participants=None` has no cap.
    """

    per_client: RateLimit = field(default_factory=lambda: RateLimit(10, 60.0))
    overall: RateLimit = field(default_factory=lambda: RateLimit(200, 6.0))
    max_participants: int | None = 1000

    def __post_init__(self):
        if self.max_participants is not None and self.max_participants < 1:
            raise SurveySettingsError(f"max_participants must be at least 1 or None, not {self.max_participants}")


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens, updated):
        self.tokens, self.updated = tokens, updated


class ParticipationLimiter:
    """Token buckets for new participations. Client addresses are kept in memory only, as keyed hashes, and only
    while their bucket is not full again (the consent text promises that IP addresses are not recorded)."""

    MAX_CLIENTS = 10_000

    def __init__(self, limits: ParticipationLimits, clock=time.monotonic):
        self.limits = limits
        self.clock = clock
        self._key = os.urandom(16)
        self._lock = threading.Lock()
        self._clients: dict = {}
        self._overall = _Bucket(float(limits.overall.burst), clock())

    def admit(self, client: str | None) -> None:
        """Take one token from the client's bucket and from the overall one, or raise SurveyError(429) saying when
        to come back. Nothing is taken when either bucket is empty."""
        now = self.clock()
        key = hashlib.blake2b((client or "").encode(), key=self._key, digest_size=16).digest()
        with self._lock:
            per_client = self.limits.per_client
            bucket = self._clients.get(key) or _Bucket(float(per_client.burst), now)
            self._refill(bucket, per_client, now)
            self._refill(self._overall, self.limits.overall, now)
            waits = [self._wait(b, rule) for b, rule in ((bucket, per_client), (self._overall, self.limits.overall))]
            if max(waits) > 0:
                wait = max(waits)
                who = "from your network" if waits[0] >= waits[1] else "right now"
                log.warning("new participation refused: rate limit (%s)", "per client" if waits[0] else "overall")
                raise SurveyError(429, f"too many new participants {who}; please try again in {_human(wait)}",
                                  headers={"Retry-After": str(max(1, int(wait + 0.999)))})
            bucket.tokens -= 1
            self._overall.tokens -= 1
            self._clients[key] = bucket
            if len(self._clients) > self.MAX_CLIENTS:
                self._forget_full(now)

    @staticmethod
    def _refill(bucket, rule, now):
        bucket.tokens = min(float(rule.burst), bucket.tokens + (now - bucket.updated) / rule.every_s)
        bucket.updated = now

    @staticmethod
    def _wait(bucket, rule):
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) * rule.every_s

    def _forget_full(self, now):
        rule = self.limits.per_client
        for key, bucket in list(self._clients.items()):
            self._refill(bucket, rule, now)
            if bucket.tokens >= rule.burst:
                del self._clients[key]


def _human(seconds):
    return f"{int(seconds + 0.999)} seconds" if seconds < 120 else f"{int(seconds / 60 + 0.999)} minutes"
