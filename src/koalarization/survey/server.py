"""Run the survey app with uvicorn: in the foreground (`koala survey serve`) or in a background thread (screenshots,
tests against a real HTTP server)."""
import socket
import threading
import time
from contextlib import contextmanager

import uvicorn


def free_port(host="127.0.0.1"):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def uvicorn_config(app, host, port, **options):
    # No access log: it would record participants' IP addresses, which the consent text says we do not keep.
    return uvicorn.Config(app, host=host, port=port, access_log=False, log_level=options.pop("log_level", "warning"),
                          server_header=False, **options)


@contextmanager
def running_in_thread(app, host="127.0.0.1", port=None, start_timeout=20.0):
    """Serve `app` on host:port (a free port by default) while the block runs; yields the base URL."""
    port = port or free_port(host)
    server = uvicorn.Server(uvicorn_config(app, host, port))
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
