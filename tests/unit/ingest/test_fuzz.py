"""Seeded fuzz of the webhook: no request, with or without the key, gets a 5xx or escapes.

Hypothesis (``test_handler.py``) shrinks failures but manages a few hundred requests a
second; this drives the whole Lambda handler in-process with a plain seeded generator,
100,000 requests per run, storage and publishing answered in memory (port doubles, as
the benchmark does), so the figure is about the handler and nothing else. Every field,
header and the key get arbitrary JSON: strings with every character a JSON string can
escape (control characters, lone surrogates, quotes), numbers of any magnitude and
precision, dates at the edges of the calendar in every UTC offset; both routes.

Reproduce a run with ``KYPERIAN_FUZZ_SEED=<seed> KYPERIAN_FUZZ_CASES=<n>``; the test
prints ``cases=N 5xx=0 uncaught=0 accepted_without_key=0`` and fails on any other count.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from kyperian.ingest import handler
from kyperian.settings import Settings
from tests.conftest import FakeLambdaContext
from tests.events.load import http_event
from tests.ingest_doubles import FixedSecret, MemoryPublisher, MemoryStore

KEY = "fuzz-key-0123456789abcdefghijklmnopqrstu"
CASES = int(os.environ.get("KYPERIAN_FUZZ_CASES", "100000"))
SEED = int(os.environ.get("KYPERIAN_FUZZ_SEED", "17"))
FIELDS = (
    "symbol",
    "action",
    "source",
    "timeframe",
    "price",
    "confidence",
    "indicators",
    "timestamp",
    "signals",
)


# --- the generator ----------------------------------------------------------------------

_SPECIALS = [chr(c) for c in range(0x20)] + [
    '"',
    "\\",
    "/",
    "\x7f",
    "\u2028",
    "\u2029",
    "\ufeff",
    "\ufffe",
    "\ud800",
    "\udbff",
    "\udc00",
    "\udfff",
    "\U0001f600",
    "{{close}}",
    "{{",
    ":",
    "NASDAQ:",
    "é",
]
_WORDS = [
    "AAPL",
    "NASDAQ:AAPL",
    "buy",
    "SELL",
    "strong buy",
    "long",
    "flat",
    "240",
    "1D",
    "W",
    "15",
    "luxalgo",
    "ai",
    "189.42",
    "1e400",
    "-0",
    "NaN",
    "Infinity",
    "0x10",
    "1_000",
    " 12 ",
    "",
    KEY,
]
_YEARS = [1, 2, 999, 1000, 1899, 1969, 1970, 1999, 2000, 2024, 2038, 2099, 2100, 2106, 9998, 9999]
_DAYS = [(1, 1), (2, 28), (2, 29), (2, 30), (3, 1), (6, 30), (12, 31), (13, 1), (0, 0), (4, 31)]


@dataclass
class Gen:
    """Arbitrary JSON values, biased to the edges validation must hold."""

    rng: random.Random
    now: float = field(default_factory=time.time)

    def text(self) -> str:
        rng = self.rng
        parts = []
        for _ in range(rng.randrange(0, 6)):
            roll = rng.random()
            if roll < 0.35:
                parts.append(rng.choice(_SPECIALS))
            elif roll < 0.7:
                parts.append(rng.choice(_WORDS))
            else:
                parts.append(chr(rng.randrange(0x20, 0x110000)))
        return "".join(parts)

    def number(self) -> Any:
        rng = self.rng
        makers = (
            # integers of any magnitude, up to 400 digits
            lambda: rng.randrange(-(10 ** rng.randrange(1, 400)), 10 ** rng.randrange(1, 400)),
            # doubles of any magnitude
            lambda: rng.choice([-1, 1]) * rng.random() * 10.0 ** rng.randrange(-330, 309),
            # magnitudes around DynamoDB's limits
            lambda: float(f"{rng.randrange(-9, 10)}e{rng.choice([-131, -130, -129, 125, 126])}"),
            # long decimal text: precision beyond 38 digits
            lambda: f"{rng.randrange(1000)}.{rng.getrandbits(200)}",
            lambda: rng.choice([0, -0.0, 5e-324, 1.7976931348623157e308, 1e12, 1e12 + 1, 100]),
            lambda: rng.choice(["NaN", "Infinity", "-Infinity", "1e999", "-1e-999", "  7  "]),
            lambda: rng.uniform(-1e6, 1e6),
            lambda: rng.uniform(0, 100),
        )
        return rng.choice(makers)()

    def date(self) -> Any:
        rng = self.rng
        roll = rng.randrange(4)
        if roll == 0:  # calendar edges in every offset
            year = rng.choice(_YEARS)
            month, day = rng.choice(_DAYS)
            hour = rng.choice([0, 23, 24])
            second = rng.choice([0, 59, 60])
            sign = rng.choice("+-")
            offset = rng.choice(
                ["Z", "z", "", f"{sign}{rng.randrange(0, 25):02}:{rng.randrange(0, 60):02}"]
            )
            frac = rng.choice(["", ".5", ".999999", ".1234567"])
            return f"{year:04}-{month:02}-{day:02}T{hour:02}:59:{second:02}{frac}{offset}"
        if roll == 1:  # around now, within and beyond the skew and retention
            moment = self.now + rng.choice([-1, 1]) * rng.choice([0, 299, 301, 86400 * 7 + 5, 1e9])
            return rng.choice([moment, moment * 1000, str(int(moment))])
        if roll == 2:
            return rng.choice([0, -1, 4102444800, 4102444799999, 1e11, 1e11 + 1, "1e11"])
        return self.value(1)

    def value(self, depth: int = 0) -> Any:
        rng = self.rng
        makers = [
            lambda: None,
            lambda: rng.choice([True, False]),
            self.number,
            self.number,
            self.text,
            self.text,
            self.date,
        ]
        if depth < 3:
            makers += [
                lambda: [self.value(depth + 1) for _ in range(rng.randrange(0, 4))],
                lambda: [self.value(depth + 1) for _ in range(rng.randrange(0, 4))],
                lambda: {self.text(): self.value(depth + 1) for _ in range(rng.randrange(0, 4))},
            ]
        return rng.choice(makers)()

    def field_value(self, name: str) -> Any:
        rng = self.rng
        if rng.random() < 0.5:
            return self.value()
        if name in ("price", "confidence"):
            return self.number()
        if name == "timestamp":
            return self.date()
        if name == "indicators":
            return {rng.choice(["rsi", "macd", self.text()]): self.number() for _ in range(3)}
        if name == "signals":
            return [self.entry() for _ in range(rng.choice([0, 1, 3, 10, 11]))]
        return rng.choice(_WORDS) if rng.random() < 0.7 else self.text()

    def entry(self) -> Any:
        names = ("timeframe", "action", "source", "price", "confidence", "indicators", "timestamp")
        return self.alert(names, mostly_valid=True)

    def alert(self, names: Sequence[str], mostly_valid: bool = False) -> dict[str, Any]:
        """A valid alert with a few fields (0, 1, 2, 3 or all) replaced or removed."""
        rng = self.rng
        base: dict[str, Any] = {
            "symbol": "NASDAQ:AAPL",
            "action": rng.choice(["buy", "sell", "strong_buy"]),
            "source": rng.choice(["luxalgo", "ai"]),
            "timeframe": rng.choice(["15", "60", "240", "D", "W"]),
            "price": 189.42,
            "timestamp": self.now - rng.randrange(0, 3000),
            "signals": [
                {"timeframe": tf, "action": rng.choice(["buy", "sell"])}
                for tf in rng.sample(["15", "60", "240", "D", "W"], rng.randrange(1, 4))
            ],
        }
        alert = {k: v for k, v in base.items() if k in names}
        mutated = rng.choice([0, 1, 1, 2] if mostly_valid else [0, 0, 1, 1, 1, 2, 3, len(names)])
        for name in rng.sample(list(names), min(mutated, len(names))):
            if rng.random() < 0.1:
                alert.pop(name, None)
            else:
                alert[name] = self.field_value(name)
        return alert


@dataclass(frozen=True)
class Case:
    event: dict[str, Any]
    has_key: bool


def make_case(gen: Gen) -> Case:
    """One request: route, body, headers and key, and whether it carries the valid key."""
    rng = gen.rng
    path = rng.choice(["/webhook", "/webhook/mtf"])
    payload = gen.alert(FIELDS)
    header_key: Any = None
    roll = rng.randrange(8)
    if roll <= 2:
        payload["passphrase"] = KEY
    elif roll == 3:
        header_key = KEY
    elif roll == 4:
        payload["passphrase"] = gen.value()
    elif roll == 5:
        header_key = gen.text()
    elif roll == 6:
        payload["passphrase"] = rng.choice([KEY + gen.text(), KEY[:-1], KEY.upper(), " " + KEY])
    if rng.random() < 0.1:
        payload["passphrase"] = KEY
        header_key = rng.choice([KEY, gen.text()])
    has_key = header_key == KEY or (header_key is None and payload.get("passphrase") == KEY)
    body = _render(gen, payload)
    headers = {gen.text()[:20] or "x-extra": gen.text() for _ in range(rng.randrange(0, 3))}
    if header_key is not None:
        headers["X-API-Key"] = header_key
    content_type = rng.choice(
        ["application/json"] * 6 + ["text/plain; charset=utf-8", None, "", gen.text()]
    )
    event = _event(path, headers, content_type)
    if isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    elif body is not None:
        event["body"] = body
        event["isBase64Encoded"] = False
    return Case(event, has_key)


_TEMPLATES = {path: http_event(path=path, body=None) for path in ("/webhook", "/webhook/mtf")}


def _event(path: str, headers: dict[str, Any], content_type: str | None) -> dict[str, Any]:
    """``http_event`` without its deep copy (a quarter of the run's time otherwise)."""
    template = _TEMPLATES[path]
    event = {k: v for k, v in template.items() if k != "body"}
    context = dict(template["requestContext"])
    context["http"] = dict(context["http"])
    event["requestContext"] = context
    merged = {k: v for k, v in template["headers"].items() if k != "content-type"}
    if content_type is not None:
        merged["content-type"] = content_type
    merged.update({k.lower(): v for k, v in headers.items()})
    event["headers"] = merged
    return event


def _render(gen: Gen, payload: dict[str, Any]) -> str | bytes | None:
    """The body: mostly the alert as JSON, sometimes garbage, bytes, or cut short."""
    rng = gen.rng
    text = json.dumps(payload, ensure_ascii=rng.random() < 0.5)
    makers: list[Callable[[], str | bytes | None]] = [
        lambda: None,
        lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))),
        gen.text,
        lambda: json.dumps(gen.value()),
        lambda: text.encode("utf-8", "surrogatepass"),  # base64, possibly invalid UTF-8
        lambda: text[: rng.randrange(len(text) + 1)],  # truncated
    ]
    return rng.choice(makers)() if rng.random() < 0.3 else text


# --- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def _in_memory_handler() -> Iterator[None]:
    settings = Settings(environment="test")
    wired = handler.Wiring(settings, MemoryStore(), MemoryPublisher(), FixedSecret(KEY))
    original = handler.wiring
    handler.wiring = lambda: wired  # type: ignore[assignment]
    sink = io.StringIO()
    stream_handler: Any = handler.logger.registered_handler
    # Swapped, not setStream(): that flushes the old stream, which a runner (mutmut) may close.
    previous, stream_handler.stream = stream_handler.stream, sink
    try:
        with contextlib.redirect_stdout(sink):
            yield
    finally:
        stream_handler.stream = previous
        handler.wiring = original


FULL_EVERY = 8


def _call(n: int, event: dict[str, Any], context: FakeLambdaContext) -> dict[str, Any]:
    """Every 8th case through the whole Lambda entry point; the rest through the router.

    The entry point's decorators (log context, metric flush) see nothing the input controls
    but cost half the time of a case, so most cases skip them to fit 100,000 in the budget;
    their metrics are dropped unflushed instead.
    """
    if n % FULL_EVERY == 0:
        whole: dict[str, Any] = handler.lambda_handler(event, context)
        return whole
    try:
        answer: dict[str, Any] = handler.app.resolve(event, context)  # type: ignore[arg-type]
        return answer
    finally:
        handler.metrics.clear()


@pytest.mark.timeout(300)  # 100,000 requests: ~30 s on a quiet machine, more when shared
@pytest.mark.filterwarnings("ignore")
def test_fuzz_no_5xx_no_uncaught_no_acceptance_without_key() -> None:
    # GIVEN a seeded stream of hostile and near-valid requests to both routes
    gen = Gen(random.Random(SEED))
    context = FakeLambdaContext()
    counts = {"5xx": 0, "uncaught": 0, "accepted_without_key": 0}
    statuses: dict[int, int] = {}
    first_failures: list[str] = []
    started = time.perf_counter()
    # WHEN each is handled by the Lambda handler in-process
    with _in_memory_handler():
        for n in range(CASES):
            case = make_case(gen)
            try:
                status = _call(n, case.event, context)["statusCode"]
            except Exception as exc:  # counting exactly these is the point
                counts["uncaught"] += 1
                failure = f"case {n}: {type(exc).__name__}: {exc}"
            else:
                failure = ""
                statuses[status] = statuses.get(status, 0) + 1
                if status >= 500:
                    counts["5xx"] += 1
                    failure = f"case {n}: status {status}"
                elif status == 202 and not case.has_key:
                    counts["accepted_without_key"] += 1
                    failure = f"case {n}: accepted without the key"
            if failure and len(first_failures) < 5:
                first_failures.append(f"{failure}; body={case.event.get('body')!r:.300}")
    elapsed = time.perf_counter() - started
    line = (
        f"cases={CASES} 5xx={counts['5xx']} uncaught={counts['uncaught']} "
        f"accepted_without_key={counts['accepted_without_key']}"
    )
    print(f"\n{line} seed={SEED} seconds={elapsed:.1f} statuses={dict(sorted(statuses.items()))}")
    # THEN none answered 5xx, none escaped, none was accepted without the key
    assert line == f"cases={CASES} 5xx=0 uncaught=0 accepted_without_key=0", first_failures
