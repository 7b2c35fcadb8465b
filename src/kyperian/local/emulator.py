"""The local AWS emulator: moto in server mode, timing every call it answers.

``python -m kyperian.local.emulator -p PORT`` serves moto exactly as ``moto.server`` does
and adds one route, ``/_kyperian/emulator``: ``GET`` returns, per caller and operation,
how many calls the emulator answered and how long it spent on them (count, total, p50,
p99 in ms); ``POST`` clears the figures. The caller is the ``app/<id>`` botocore puts in
the User-Agent from ``AWS_SDK_UA_APP_ID`` (the stack gives the gateway and the engine
their own), the operation is the ``X-Amz-Target`` of the JSON protocols every client of
the signal path uses. ``make loadtest`` reads it to report the emulator's share of the
latency apart from the system's own: on AWS that share is DynamoDB's, EventBridge's and
SQS's, with their own figures.

The stack may run several emulators, one per group of services, so that moto (one
Python process, one core) is not the whole stack's bottleneck; each is provisioned with
the templates of the services it serves. Local use only.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any, Final
from urllib.parse import urlsplit

STATS_PATH: Final = "/_kyperian/emulator"
DYNAMODB_TARGET: Final = "DynamoDB_"
_APP_ID = re.compile(r"\bapp/([A-Za-z0-9._-]+)")
_MAX_SAMPLES: Final = 200_000
"""Per operation; beyond it only the count and total grow (a run of hours)."""

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CallTimes:
    """Thread-safe durations per (caller, operation)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        self._totals: dict[tuple[str, str], tuple[int, float]] = defaultdict(lambda: (0, 0.0))

    def add(self, caller: str, operation: str, ms: float) -> None:
        key = (caller, operation)
        with self._lock:
            count, total = self._totals[key]
            self._totals[key] = (count + 1, total + ms)
            samples = self._samples[key]
            if len(samples) < _MAX_SAMPLES:
                samples.append(ms)

    def clear(self) -> None:
        with self._lock:
            self._samples.clear()
            self._totals.clear()

    def summary(self) -> list[dict[str, Any]]:
        with self._lock:
            snapshot = {k: (v, sorted(self._samples[k])) for k, v in self._totals.items()}
        return [
            {
                "caller": caller,
                "operation": operation,
                "count": count,
                "total_ms": round(total, 3),
                "p50_ms": round(_quantile(ordered, 0.50), 3),
                "p99_ms": round(_quantile(ordered, 0.99), 3),
            }
            for (caller, operation), ((count, total), ordered) in sorted(snapshot.items())
        ]


def caller_of(environ: dict[str, Any]) -> str:
    """``app/<id>`` from the User-Agent, or ``other``."""
    match = _APP_ID.search(environ.get("HTTP_USER_AGENT", ""))
    return match.group(1) if match else "other"


def operation_of(environ: dict[str, Any]) -> str:
    """``DynamoDB_20120810.PutItem`` style target, or the method and path for the rest."""
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target)
    return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '/')}"


class Forward:
    """WSGI app relaying a call to another emulator and its answer back, untouched."""

    _HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding"})

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            name[5:].replace("_", "-").title(): str(value)
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING"):
            path += f"?{environ['QUERY_STRING']}"
        connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
        try:
            connection.request(environ.get("REQUEST_METHOD", "POST"), path, body, headers)
            answer = connection.getresponse()
            payload = answer.read()
        finally:
            connection.close()
        relayed = [(k, v) for k, v in answer.getheaders() if k.lower() not in self._HOP_BY_HOP]
        start_response(f"{answer.status} {answer.reason}", relayed)
        return [payload]


class Timed:
    """WSGI middleware: time each call of ``app`` (to the last byte of its answer).

    With ``dynamodb``, DynamoDB calls are relayed to that emulator instead (timed there),
    so a client given this one endpoint for every service still reaches every table, and
    the figures of both are served here, merged.

    DynamoDB calls answered here run one at a time: moto's ``TransactWriteItems`` deep-copies
    the tables while another thread's ``PutItem`` changes them ("dictionary changed size
    during iteration"), a 500 DynamoDB never gives, and every order intent is a transaction.
    Other services stay concurrent (an SQS long poll holds its thread for seconds).
    """

    def __init__(
        self, app: WsgiApp, times: CallTimes | None = None, dynamodb: Forward | None = None
    ) -> None:
        self.app = app
        self.times = times or CallTimes()
        self.dynamodb = dynamodb
        self._dynamodb_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == STATS_PATH:
            return self._stats(environ, start_response)
        operation = operation_of(environ)
        if self.dynamodb is not None and operation.startswith(DYNAMODB_TARGET):
            return self.dynamodb(environ, start_response)
        began = time.perf_counter()
        if operation.startswith(DYNAMODB_TARGET):
            with self._dynamodb_lock:
                body = b"".join(self.app(environ, start_response))
        else:
            body = b"".join(self.app(environ, start_response))
        ms = (time.perf_counter() - began) * 1000
        self.times.add(caller_of(environ), operation, ms)
        return [body]

    def _stats(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST":
            self.times.clear()
        calls = self.times.summary()
        if self.dynamodb is not None:
            calls += _stats_of(self.dynamodb.upstream, method)
        body = json.dumps({"calls": calls}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]


def _stats_of(endpoint: str, method: str) -> list[dict[str, Any]]:
    """Another emulator's figures (``method`` POST clears them too)."""
    request = urllib.request.Request(f"{endpoint}{STATS_PATH}", method=method)  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
        calls: list[dict[str, Any]] = json.loads(answer.read())["calls"]
        return calls


def remember_jsonpaths() -> None:
    """Parse each JSONPath expression once, not once per event.

    moto's EventBridge renders every event it delivers to a target through eight JSONPath
    expressions (the default input template) and parses each anew with jsonpath-ng, which
    builds a yacc parser per parse: about 15 ms of CPU per event and target, the largest
    single cost of the local webhook path. Parsing is a pure function of the text and a
    parsed expression is only read afterwards, so remembering them changes no answer.
    """
    import jsonpath_ng.ext  # noqa: PLC0415 - before moto imports it

    module: Any = jsonpath_ng.ext  # its re-export of parse is implicit
    if not hasattr(module.parse, "cache_info"):
        module.parse = functools.lru_cache(maxsize=1024)(module.parse)


def remember_moto_lookups() -> None:
    """Look up what cannot change while the server runs once, not on every request.

    On every request moto's server lists its own package directory (a ``listdir`` and ~50
    ``stat`` calls) to tell a service name from a host, and lists the methods of the
    responding class with ``inspect.getmembers``: together about a quarter of the CPU of a
    DynamoDB ``PutItem``. Both answers depend only on the installed moto.
    """
    from moto import backends as moto_backends  # noqa: PLC0415 - after MOTO_PORT is set
    from moto.core import responses as moto_responses  # noqa: PLC0415

    backends: Any = moto_backends  # patched below: typed loosely on purpose
    responses: Any = moto_responses
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    if not hasattr(responses.method_names_from_class, "cache_info"):
        responses.method_names_from_class = functools.lru_cache(maxsize=None)(
            responses.method_names_from_class
        )


def retention_without_attributes() -> None:
    """Check a received message's retention period without computing every queue attribute.

    For each message it hands out, moto's SQS ``ReceiveMessage`` asks for the queue's
    ``MessageRetentionPeriod`` through ``get_queue_attributes``, which computes all of
    them, the approximate message counts included: a pass over every message in the
    queue, with a clock read per message, two or three times. Once the engine falls
    behind, each message costs more the longer the backlog, and the local stack never
    catches up (a load test at 33/s on a busy machine fell to 2-4 decisions a second).
    The period is a plain attribute of the queue; reading it gives the same answer.
    """
    from moto.core.utils import unix_time  # noqa: PLC0415 - after MOTO_PORT is set
    from moto.sqs.models import SQSBackend  # noqa: PLC0415

    backend: Any = SQSBackend  # patched below: typed loosely on purpose
    if getattr(backend.is_message_valid_based_on_retention_period, "direct", False):
        return

    def is_valid(self: Any, queue_name: str, message: Any) -> bool:
        retention = int(self.get_queue(queue_name).message_retention_period)
        return bool(retention + message.sent_timestamp / 1000 > unix_time())

    is_valid.direct = True  # type: ignore[attr-defined]
    backend.is_message_valid_based_on_retention_period = is_valid


_QUERYING = threading.local()
"""The table a ``Query`` runs on in this thread, and the partition key it names."""


def query_one_partition() -> None:
    """Let a DynamoDB ``Query`` read its candidates without sorting the whole table.

    moto's ``Table.query`` takes its candidates from ``all_items()``, which sorts every
    item of the table by primary key (a Python comparison of moto's typed values each
    time): the cost grows with the table, and the Signals, Decisions and Ledger tables
    grow during a load test. The query then keeps the matching items and sorts them
    itself, by range key (a base-table query, within one partition) or by index key
    then primary key (an index query), both total orders: the input order never shows.
    During a query only, ``all_items()`` hands back the named partition's items (a
    base-table query) or every item unsorted (an index query). Scans, exports and
    everything else still get the sorted list. Answers are unchanged.
    """
    from moto.dynamodb.models.table import Table  # noqa: PLC0415 - after MOTO_PORT is set

    moto_table: Any = Table  # patched below: typed loosely on purpose
    if hasattr(moto_table.query, "one_partition"):
        return
    every_item_sorted, query = moto_table.all_items, moto_table.query

    def all_items(self: Any) -> list[Any]:
        if getattr(_QUERYING, "table", None) is not self:
            return list(every_item_sorted(self))
        if _QUERYING.index_name:  # the index key is an attribute: every item is a candidate
            return [item for group in self.items.values() for item in _members(self, group)]
        return _members(self, self.items.get(_QUERYING.hash_key))

    def one_partition(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        index_name = kwargs.get("index_name", args[6] if len(args) > 6 else None)
        _QUERYING.table, _QUERYING.hash_key, _QUERYING.index_name = self, hash_key, index_name
        try:
            return query(self, hash_key, *args, **kwargs)
        finally:
            _QUERYING.table = None

    one_partition.one_partition = True  # type: ignore[attr-defined]
    moto_table.all_items, moto_table.query = all_items, one_partition


def _members(table: Any, group: Any) -> list[Any]:
    """The items of one ``Table.items`` entry: a dict by range key, or the item itself."""
    if group is None:
        return []
    return list(group.values()) if table.range_key_attr else [group]


def quiet_requests() -> Any:
    """werkzeug's request handler without its access line per request.

    Writing one line per call through ``logging`` was about a sixth of the DynamoDB
    emulator's CPU under load (profiled with py-spy); errors are still logged.
    """
    from werkzeug.serving import WSGIRequestHandler  # noqa: PLC0415 - with moto

    class QuietRequests(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            return

    return QuietRequests


def main(argv: list[str] | None = None) -> None:
    """Serve moto on ``--host``/``--port`` with call timing, until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--dynamodb", help="URL of the emulator serving DynamoDB, to relay to")
    args = parser.parse_args(argv)
    # moto builds queue URLs and ARNs from this; it must be the port it really serves on.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    remember_jsonpaths()
    remember_moto_lookups()
    query_one_partition()
    retention_without_attributes()
    from moto.moto_server.werkzeug_app import (  # noqa: PLC0415 - after MOTO_PORT is set
        DomainDispatcherApplication,
        create_backend_app,
    )
    from werkzeug.serving import run_simple  # noqa: PLC0415 - with moto

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    relay = Forward(args.dynamodb) if args.dynamodb else None
    run_simple(
        args.host,
        args.port,
        Timed(app, dynamodb=relay),
        threaded=True,
        request_handler=quiet_requests(),
    )


if __name__ == "__main__":
    main()
