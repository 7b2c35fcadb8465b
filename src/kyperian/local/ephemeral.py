"""An AWS emulator and a redis-server that live as long as a ``with`` block.

The engine drills (``kyperian ops exactly-once-drill``, ``kill-switch-drill``) build engines
in this process and in spawned children against both, so they need them on free ports, in
the background, and gone afterwards with no state left for the next drill or test. The
emulator is moto's server app in a thread of this process, behind the local stack's own
middleware (``emulator.Timed``: DynamoDB calls one at a time, as moto's transactions need);
moto is imported only when one starts (this package is the only product code allowed to use
it). redis-server is a child process that persists nothing. Never used by the deployed service.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from kyperian.local.emulator import Timed
from kyperian.local.supervisor import StartupFailed, free_port, redis_ping

__all__ = ["emulator", "free_port", "redis_server"]


@contextmanager
def emulator() -> Iterator[str]:
    """Serve moto on a free port in a thread; yield its endpoint URL; reset and stop it after."""
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - moto only when an emulator runs
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import make_server  # noqa: PLC0415 - with moto

    port = free_port()
    app = Timed(DomainDispatcherApplication(create_backend_app))  # DynamoDB one call at a time
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="emulator", daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        yield endpoint
    finally:  # moto's state is this process's: leave none for the next drill or test
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with suppress(OSError):
            urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - http, just started
        server.shutdown()
        thread.join(timeout=10)


@contextmanager
def redis_server(start_timeout: float = 5.0) -> Iterator[int]:
    """A redis-server on a free port that saves nothing; yield its port; stop it after.

    Raises
    ------
    StartupFailed
        redis-server is not installed or did not answer PING within ``start_timeout``.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartupFailed("redis-server is not installed: run `make redis`")
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(  # noqa: S603 - fixed binary and arguments
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", directory],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + start_timeout
            while not redis_ping(port):
                if time.monotonic() > deadline or process.poll() is not None:
                    raise StartupFailed(f"redis-server did not answer on port {port}")
                time.sleep(0.05)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=5)
