"""Run the survey app with uvicorn: in the foreground (`koala survey serve`) or in a background thread
(screenshots, tests against a real HTTP server), with limits that keep slow or idle clients from holding the
server's sockets.

uvicorn closes an idle keep-alive connection after `timeout_keep_alive`, but only once a first response has been
sent, and any byte received cancels that timer; it has no timeout for reading a request. A socket that sends
nothing, half a request line, or a byte every few seconds (slow-loris) would stay open for ever, and a few dozen
of them exhaust the process's file descriptors. `GuardedH11Protocol` adds the missing guard at the protocol level,
where the socket is: from the moment a connection opens, or a response has been sent on it, the client has
`request_timeout` seconds to deliver one complete request (line, headers and body). Bytes arriving do not extend
the deadline. When it passes, the socket is closed. It also turns a connection away at once (503, closed) when
the server already holds `limit_concurrency - 1` connections, so that a flood of idle sockets costs no
descriptors beyond that limit.
"""
import logging
import resource
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .files import SurveySettingsError
from .security import with_security_headers

log = logging.getLogger(__name__)


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
    keep_alive: seconds an idle keep-alive connection is kept after a response (uvicorn's timeout_keep_alive);
    limit_concurrency: connections at which uvicorn answers 503; new connections are refused one earlier
        (None: `default_limit_concurrency()`); it is also the listen backlog, so that one burst of accepts cannot
        take more descriptors than that;
    max_header_bytes: largest request line plus headers (h11_max_incomplete_event_size); larger is a 400.
    """

    request_timeout: float = 10.0
    keep_alive: float = 5.0
    limit_concurrency: int | None = None
    max_header_bytes: int = 8 * 1024

    def __post_init__(self):
        if self.request_timeout <= 0 or self.keep_alive <= 0:
            raise SurveySettingsError("the request timeout and the keep-alive timeout must be positive seconds")
        if self.limit_concurrency is not None and self.limit_concurrency < 2:
            raise SurveySettingsError("limit_concurrency must be at least 2")
        if self.max_header_bytes < 1024:
            raise SurveySettingsError("max_header_bytes must be at least 1024")

    @property
    def concurrency(self) -> int:
        """limit_concurrency, or the default for this process's descriptor limit."""
        return self.limit_concurrency or default_limit_concurrency()


def _raw_response(status: int, reason: str, text: str, extra=()) -> bytes:
    body = text.encode()
    headers = with_security_headers([(b"content-type", b"text/plain; charset=utf-8"),
                                     (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
                                     *extra])
    head = f"HTTP/1.1 {status} {reason}\r\n".encode() + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    return head + b"\r\n" + body


def guarded_protocol(limits: ServerLimits) -> type:
    """uvicorn's h11 protocol with a request deadline and a connection cap (see the module docstring)."""

    class GuardedH11Protocol(H11Protocol):
        request_timeout = limits.request_timeout
        max_connections = limits.concurrency - 1

        def connection_made(self, transport) -> None:
            if len(self.connections) >= self.max_connections:
                self.transport = transport  # connection_lost needs it; the connection is never counted
                transport.write(_raw_response(503, "Service Unavailable", "the survey server is busy; try again",
                                              [(b"retry-after", b"5")]))
                transport.close()
                return
            super().connection_made(transport)
            self._deadline = None
            self._arm_deadline()

        def _arm_deadline(self) -> None:
            self._cancel_deadline()
            self._deadline = self.loop.call_later(self.request_timeout, self._deadline_passed)

        def _cancel_deadline(self) -> None:
            deadline = getattr(self, "_deadline", None)
            if deadline is not None:
                deadline.cancel()
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
            if self._request_complete():
                self._cancel_deadline()
            elif getattr(self, "_deadline", None) is None and not self.transport.is_closing():
                self._arm_deadline()  # a pipelined request started while the previous one was being answered

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self._request_complete():
                self._arm_deadline()  # the next request on this keep-alive connection has the same deadline

        def connection_lost(self, exc) -> None:
            self._cancel_deadline()
            super().connection_lost(exc)

        def send_400_response(self, msg: str) -> None:
            """A malformed request: 400 with the same security headers as every other response."""
            self.transport.write(_raw_response(400, "Bad Request", msg))
            self.transport.close()

    return GuardedH11Protocol


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now (for tests and screenshots)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def uvicorn_config(app, host: str, port: int, limits: ServerLimits | None = None, **options) -> uvicorn.Config:
    """The uvicorn configuration of the survey server.

    No access log: it would record participants' IP addresses, which the consent text says we do not keep.
    `log_config=None`: a library must not reconfigure the process's logging (uvicorn's default dictConfig closes
    every existing handler, pytest's capture included). The caller's own logging setup decides what is shown.
    """
    limits = limits or ServerLimits()
    return uvicorn.Config(
        app, host=host, port=port, http=guarded_protocol(limits), access_log=False, log_config=None,
        log_level=options.pop("log_level", None), server_header=False, timeout_keep_alive=limits.keep_alive,
        limit_concurrency=limits.concurrency, backlog=limits.concurrency,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        ws="none", lifespan="off", **options)


def serve(app, host: str = "127.0.0.1", port: int = 8000, limits: ServerLimits | None = None) -> None:
    """Serve `app` in the foreground until interrupted (Ctrl+C)."""
    limits = limits or ServerLimits()
    log.info("serving on %s:%d (request timeout %.3g s, keep-alive %.3g s, at most %d connections)", host, port,
             limits.request_timeout, limits.keep_alive, limits.concurrency - 1)
    uvicorn.Server(uvicorn_config(app, host, port, limits)).run()


@contextmanager
def running_in_thread(app, host: str = "127.0.0.1", port: int | None = None, start_timeout: float = 20.0,
                      limits: ServerLimits | None = None) -> Iterator[str]:
    """Serve `app` on host:port (a free port by default) while the block runs; yields the base URL."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn_config(app, host, port, limits))
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
