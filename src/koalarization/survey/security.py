"""The survey's defences that are not about a single field: response headers, body size, the Host header, HEAD
requests and cross-site posts. (How fast new participations may start is in `limits.py`.)

- `SecurityHeaders` wraps the *whole* ASGI app (outside Starlette's error middleware), so every response, a 404,
  a 422 or a 500 included, carries the same security headers and `Cache-Control: no-store`. It also refuses a
  request whose Host is a DNS name the survey was not told about (DNS rebinding) and answers HEAD like GET without
  the body.
- `same_origin` refuses form posts that another site makes a participant's browser send.
"""
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from .limits import ParticipationLimiter, ParticipationLimits, RateLimit
from .store import SurveyError

__all__ = ["MAX_BODY_BYTES", "SECURITY_HEADERS", "ParticipationLimiter", "ParticipationLimits", "RateLimit",
           "SecurityHeaders", "host_allowed", "same_origin", "with_security_headers"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
HEAD_MARK = "koala.head"  # set in the scope of a HEAD request answered as GET (a photo fetched by HEAD is not shown)

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


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` (ASGI pairs) with ours in place of any the app set under the same names."""
    return [(name, value) for name, value in headers if name.lower() not in _REPLACED] + SECURITY_HEADERS


def host_allowed(host_header: str, names: frozenset[str] | None) -> bool:
    """Whether a request's Host may reach the survey: any IP address, `localhost`, or one of `names` (lower case;
    None: every host). A DNS-rebinding page reaches the server under its own domain name, which is not in `names`;
    an IP address in Host cannot be rebound, so it is always allowed (participants on a LAN use one)."""
    if names is None:
        return True
    host = urlsplit(f"//{host_header}").hostname or ""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return host == "localhost" or host in names


class SecurityHeaders:
    """ASGI wrapper around the whole app: the security headers on every response; bodies over `max_bytes` (413) or
    with a malformed Content-Length (400) refused before any handler runs; a Host that is not the survey's refused
    (400, DNS rebinding); HEAD answered as GET without the body.

    It reads the whole (small) body first, so a body that streams past the limit is refused before any work, and
    a handler never sees half a body.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], max_bytes: int = MAX_BODY_BYTES,
                 allowed_hosts: frozenset[str] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        head = scope["method"] == "HEAD"
        if head:  # FastAPI routes answer GET only; HEAD is the same answer without its body
            scope = {**scope, "method": "GET", HEAD_MARK: True}

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": with_security_headers(list(message.get("headers", [])))}
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        headers = dict(scope.get("headers", []))
        if not host_allowed(headers.get(b"host", b"").decode("latin-1"), self.allowed_hosts):
            return await self._refuse(send_with_headers, 400, "this server answers only under the survey's own "
                                                             "address")
        declared = headers.get(b"content-length")
        if declared is not None:
            numeric = declared.isdigit() and len(declared) <= 18  # bytes.isdigit() is ASCII-only
            if not numeric or int(declared) > self.max_bytes:
                return await self._refuse_body(send_with_headers, numeric)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await self._refuse_body(send_with_headers, True)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)
        return None

    async def _refuse_body(self, send: Send, numeric: bool) -> None:
        if numeric:
            return await self._refuse(send, 413, f"request body larger than {self.max_bytes} bytes")
        return await self._refuse(send, 400, "malformed Content-Length header")

    @staticmethod
    async def _refuse(send: Send, status: int, error: str) -> None:
        text = json.dumps({"error": error}).encode()
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

    def ours(url: str) -> bool:
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
