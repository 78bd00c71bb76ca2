"""Run the survey app with uvicorn: in the foreground (`koala survey serve`) or in a background thread
(screenshots, tests against a real HTTP server), with limits that keep slow, idle or non-reading clients from
holding the server's sockets.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but only once a first response has been
sent, and any byte received cancels that timer; it has no timeout for reading a request, none for sending a reply,
and its header limit (h11's) holds only for headers that arrive in pieces. `GuardedH11Protocol` adds what is
missing at the protocol level, where the socket is:

- **request deadline**: from the moment a connection opens, or a response has been sent on it, the client has
  `request_timeout` seconds to deliver one complete request (line, headers and body). Bytes arriving do not extend
  the deadline (slow-loris).
- **send deadline**: a reply that the client does not read (the socket's buffers full, writing paused) is
  abandoned after `send_timeout` seconds and the socket closed, so that a client that sends requests and never
  reads the answers cannot hold a connection for ever.
- **header limit**: request line and headers larger than `max_header_bytes` get 431, however they arrive.
- **no deep pipelining**: a client that queues more than `MAX_PIPELINED` requests on one connection behind the
  one being answered is disconnected (browsers do not pipeline; a client that asks for hundreds of photos at once
  and reads none would otherwise keep the server busy writing into full buffers).
- **connection cap with eviction**: at `limit_concurrency - 1` connections, a new one takes the place of a
  connection that is doing nothing: one whose reply is stuck because its client does not read, else the oldest one
  that is waiting for a request; only connections open for at least `EVICT_AFTER_S`, never one whose request is
  being answered. When there is none, the newcomer gets 503 and is closed at once. So sockets that do nothing
  cannot keep a participant or `/healthz` out, and a flood costs no descriptors beyond the limit.

Forwarded addresses (`X-Forwarded-For`, `X-Forwarded-Proto`) are believed only from `trusted_proxies`: uvicorn's
own default trusts 127.0.0.1, so any local process could claim any address and slip past the per-network limit.
"""
from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .limits import ServerLimits, default_limit_concurrency  # noqa: F401  (re-exported)
from .security import with_security_headers

log = logging.getLogger(__name__)

EVICT_AFTER_S = 1.0  # a connection must be this old before a newcomer may take its place
MAX_PIPELINED = 4  # requests a client may queue behind the one being answered
HEAD_END = re.compile(rb"\r?\n\r?\n")


def _raw_response(status: int, reason: str, text: str, extra: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    body = text.encode()
    headers = with_security_headers([(b"content-type", b"text/plain; charset=utf-8"),
                                     (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                                     *extra])
    head = f"HTTP/1.1 {status} {reason}\r\n".encode() + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return head + b"\r\n" + body


class _Guard(H11Protocol):
    """The guards of the module docstring; `guarded_protocol` sets the class attributes from `ServerLimits`."""

    request_timeout = 10.0
    send_timeout = 10.0
    max_connections = 255
    max_header_bytes = 8 * 1024
    _deadline: Any = None
    _send_deadline: Any = None
    _stalled_since: float | None = None
    _opened = 0.0

    # connections ---------------------------------------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        if len(self.connections) >= self.max_connections and not self._evict_stalled():
            self.transport = transport  # connection_lost needs it; the connection is never counted
            transport.write(_raw_response(503, "Service Unavailable", "the survey server is busy; try again",
                                          [(b"retry-after", b"5")]))
            transport.close()
            return
        super().connection_made(transport)
        self._opened = self.loop.time()
        self._arm_deadline()

    def _stall(self, now: float) -> tuple[int, float] | None:
        """(0, age) for a connection whose reply nobody reads, (1, age) for one waiting for a request; None while
        a request is being answered (or the connection is closing)."""
        if self.transport is None or self.transport.is_closing():
            return None
        if self._stalled_since is not None:
            return 0, now - self._opened
        if self._deadline is not None:
            return 1, now - self._opened
        return None

    def _evict_stalled(self) -> bool:
        """Close a connection that is doing nothing to make room for a new one (see the module docstring); False
        when there is none."""
        now = self.loop.time()
        stalled = []
        for other in self.connections:
            stall = other._stall(now) if isinstance(other, _Guard) else None
            if stall is not None and stall[1] >= EVICT_AFTER_S:
                stalled.append((stall[0], -stall[1], id(other), other))
        if not stalled:
            return False
        victim = min(stalled)[3]
        log.info("closed a stalled connection to make room for a new one")
        self.connections.discard(victim)
        victim.transport.abort()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._cancel_send_deadline()
        super().connection_lost(exc)

    # the request deadline ------------------------------------------------------------------------------------

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.request_timeout, self._deadline_passed)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _request_complete(self) -> bool:
        return self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    def _deadline_passed(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.info("closed a connection that did not send a whole request within %.3g s", self.request_timeout)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._request_complete() and len(HEAD_END.findall(self.conn.trailing_data[0])) > MAX_PIPELINED:
            log.info("closed a connection that queued more than %d requests", MAX_PIPELINED)
            self.transport.abort()
            return
        if self._request_complete():
            self._cancel_deadline()
        elif self._deadline is None and not self.transport.is_closing():
            self._arm_deadline()  # a pipelined request started while the previous one was being answered

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self._request_complete():
            self._arm_deadline()  # the next request on this keep-alive connection has the same deadline

    # the send deadline ---------------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_deadline is None:
            self._stalled_since = self.loop.time()
            self._send_deadline = self.loop.call_later(self.send_timeout, self._send_deadline_passed)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_send_deadline()

    def _cancel_send_deadline(self) -> None:
        if self._send_deadline is not None:
            self._send_deadline.cancel()
            self._send_deadline = None
        self._stalled_since = None

    def _send_deadline_passed(self) -> None:
        self._send_deadline = None
        log.info("closed a connection whose client did not read its reply within %.3g s", self.send_timeout)
        self.transport.abort()  # close() would wait for the unread reply to drain

    # the header limit ----------------------------------------------------------------------------------------

    def handle_events(self) -> None:
        if self._head_too_large():
            log.info("refused request headers larger than %d bytes", self.max_header_bytes)
            self.transport.write(_raw_response(431, "Request Header Fields Too Large",
                                               f"request line and headers must fit in {self.max_header_bytes} bytes"))
            self.transport.close()
            return
        super().handle_events()

    def _head_too_large(self) -> bool:
        """Whether the request waiting to be parsed has a head (line and headers) over the limit: h11's own limit
        applies only while the head is incomplete, so a large head sent in one piece would pass it."""
        if self.conn.their_state is not h11.IDLE:
            return False
        buffered = self.conn.trailing_data[0]
        if len(buffered) <= self.max_header_bytes:
            return False
        end = HEAD_END.search(buffered, 0, self.max_header_bytes + 4)
        return end is None or end.end() > self.max_header_bytes + 4

    def send_400_response(self, msg: str) -> None:
        """A malformed request: 400 with the same security headers as every other response."""
        self.transport.write(_raw_response(400, "Bad Request", msg))
        self.transport.close()


def guarded_protocol(limits: ServerLimits) -> type:
    """uvicorn's h11 protocol with the guards of the module docstring, set from `limits`."""
    return type("GuardedH11Protocol", (_Guard,), {
        "request_timeout": limits.request_timeout, "send_timeout": limits.send_timeout,
        "max_connections": limits.concurrency - 1, "max_header_bytes": limits.max_header_bytes})


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (for tests and screenshots)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def uvicorn_config(app: Any, host: str, port: int, limits: ServerLimits | None = None,
                   trusted_proxies: Sequence[str] = (), **options: Any) -> uvicorn.Config:
    """The uvicorn configuration of the survey server.

    No access log: it would record participants' IP addresses, which the consent text says we do not keep.
    `log_config=None`: a library must not reconfigure the process's logging (uvicorn's default dictConfig closes
    every existing handler, pytest's capture included). The caller's own logging setup decides what is shown.
    `trusted_proxies`: addresses (or networks) of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are
    believed; none by default, so that no client can claim another's address.
    """
    limits = limits or ServerLimits()
    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(limits), access_log=False, log_config=None,
        log_level=options.pop("log_level", None), server_header=False,
        timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]  # uvicorn takes float seconds
        limit_concurrency=limits.concurrency, backlog=limits.concurrency,
        h11_max_incomplete_event_size=limits.max_header_bytes, proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=list(trusted_proxies) or None, ws="none", lifespan="off", **options)


def serve(app: Any, host: str = "127.0.0.1", port: int = 8000, limits: ServerLimits | None = None,
          trusted_proxies: Sequence[str] = ()) -> None:
    """Serve `app` in the foreground until interrupted (Ctrl+C)."""
    limits = limits or ServerLimits()
    log.info("serving on %s:%d (request timeout %.3g s, send timeout %.3g s, keep-alive %.3g s, at most %d "
             "connections; forwarded addresses trusted from %s)", host, port, limits.request_timeout,
             limits.send_timeout, limits.keep_alive, limits.concurrency - 1, ", ".join(trusted_proxies) or "nobody")
    uvicorn.Server(uvicorn_config(app, host, port, limits, trusted_proxies)).run()


@contextmanager
def running_in_thread(app: Any, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 20.0,
                      limits: ServerLimits | None = None, trusted_proxies: Sequence[str] = ()) -> Iterator[str]:
    """Serve `app` on host:port (a free port by default) while the block runs; yields the base URL."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn_config(app, host, port, limits, trusted_proxies))
    thread = threading.Thread(target=server.run, name=f"survey-uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the survey server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
