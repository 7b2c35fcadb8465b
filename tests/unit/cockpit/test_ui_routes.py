"""The cockpit's pages over in-memory ports: what a trader sees after decisions are made."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from kyperian.domain.engine_ports import QueueMessage
from kyperian.domain.models import Signal, Timeframe
from kyperian.engine.api.deps import get_clock
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices
from kyperian.engine.ui.recorder import ActivityRecorder
from kyperian.settings import Settings
from tests.engine_auth import AUTH_HEADERS, ENGINE_TOKEN, sign_in
from tests.signal_factory import envelope, make_signal
from tests.unit.cockpit.doubles import MemoryFeed, MemoryIndex
from tests.unit.engine.conftest import Engine, build_engine


@dataclass
class Cockpit:
    engine: Engine
    feed: MemoryFeed
    index: MemoryIndex
    client: TestClient

    def decide(self, *signals: Signal) -> None:
        for number, signal in enumerate(signals):
            message = QueueMessage(f"m-{signal.signal_id}-{number}", "r", envelope(signal), 1)
            self.engine.processor.handle(message)
            self.engine.clock.advance(1)


@pytest.fixture
def cockpit() -> Iterator[Cockpit]:
    engine = build_engine()
    feed, index = MemoryFeed(), MemoryIndex()
    engine.processor.observers = (ActivityRecorder(feed, index, engine.circuit),)
    services = EngineServices(
        settings=Settings(environment="test", engine_token=ENGINE_TOKEN),
        rules=engine.processor.rules,
        cache=engine.cache,
        decisions=engine.decisions,
        history=engine.history,
        circuit=engine.circuit,
        broker=engine.broker,
        processor=engine.processor,
        worker=None,
        feed=feed,
        symbols=index,
        queue_depth=lambda: 3,
    )
    app = create_app(services)
    app.dependency_overrides[get_clock] = lambda: engine.clock.wall
    with TestClient(app, headers=AUTH_HEADERS, base_url="http://localhost") as client:
        yield Cockpit(engine, feed, index, client)


def _aligned(symbol: str = "AAPL") -> tuple[Signal, ...]:
    return (
        make_signal(symbol=symbol, timeframe="1W", action="BUY", age=timedelta(hours=3)),
        make_signal(symbol=symbol, timeframe="1D", action="BUY", age=timedelta(hours=2)),
        make_signal(symbol=symbol, timeframe="4h", action="STRONG_BUY", age=timedelta(seconds=0)),
    )


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_board_shows_each_symbol_with_its_signals_and_decision(cockpit: Cockpit) -> None:
    # GIVEN aligned buys on three timeframes of AAPL, decided by the processor
    cockpit.decide(*_aligned())

    # WHEN the trader opens the cockpit
    response = cockpit.client.get("/ui")

    # THEN the board has an AAPL row: the three timeframes fresh, the decision a sized buy
    assert response.status_code == 200
    html = response.text
    row = html[html.index('data-symbol="AAPL"') :]
    row = row[: row.index("</tr>")]
    assert row.count('class="cell fresh') == 3
    assert "STRONG BUY" in row
    assert re.search(r"size [1-9]\d*\.\d\d%", _text(row))
    assert "vetoed" not in row


def test_a_vetoed_decision_is_spelled_out_in_words(cockpit: Cockpit) -> None:
    # GIVEN a 15m buy with no anchor timeframe (fusion vetoes it: no 4h or 1D signal)
    cockpit.decide(make_signal(symbol="MSFT", timeframe="15m", action="BUY"))

    # WHEN the board panel is fetched as an htmx fragment
    response = cockpit.client.get("/ui/panels/board", headers={"HX-Request": "true"})

    # THEN it is the panel alone, and the veto's reason is written out
    assert response.text.lstrip().startswith("{#") is False
    assert "<html" not in response.text
    assert 'id="board"' in response.text
    decision = cockpit.engine.decisions.latest("MSFT")
    assert decision is not None
    assert decision.vetoes
    assert f"vetoed: {decision.vetoes[0].reason}" in response.text


def test_a_panel_opened_directly_is_a_whole_page(cockpit: Cockpit) -> None:
    # GIVEN a decision  WHEN the feed panel URL is opened without htmx
    cockpit.decide(*_aligned())
    response = cockpit.client.get("/ui/panels/feed")
    # THEN a full page (head, scripts) around the one panel
    assert "<html" in response.text
    assert 'id="feed"' in response.text
    assert 'id="board"' not in response.text
    assert "/ui/static/vendor/htmx-2.0.11.min.js" in response.text


def test_a_signal_older_than_fusion_lifetime_is_shown_stale(cockpit: Cockpit) -> None:
    # GIVEN a 1D signal, then the clock moves past the 15m lifetime of a later 15m signal
    cockpit.decide(
        make_signal(symbol="TSLA", timeframe="1D", action="SELL"),
        make_signal(symbol="TSLA", timeframe="15m", action="SELL"),
    )
    lifetime = cockpit.engine.processor.rules.max_age_seconds
    cockpit.engine.clock.advance(lifetime[Timeframe.M15] + 60)

    # WHEN the board is read
    html = cockpit.client.get("/ui/panels/board", headers={"HX-Request": "true"}).text

    # THEN the 1D cell is fresh and the 15m cell stale
    row = html[html.index('data-symbol="TSLA"') :]
    cells = re.findall(r'<td class="cell ([a-z]+)', row[: row.index("</tr>")])
    assert cells == ["empty", "fresh", "empty", "empty", "empty", "stale"]


def test_the_feed_is_newest_first_and_filters_by_symbol(cockpit: Cockpit) -> None:
    # GIVEN decisions on AAPL then MSFT
    cockpit.decide(*_aligned("AAPL"))
    cockpit.decide(make_signal(symbol="MSFT", timeframe="4h", action="SELL"))

    # WHEN the feed is read unfiltered, then for AAPL
    everything = _text(cockpit.client.get("/ui/panels/feed", headers={"HX-Request": "true"}).text)
    only = cockpit.client.get(
        "/ui/panels/feed", params={"symbol": "aapl"}, headers={"HX-Request": "true"}
    ).text

    # THEN MSFT (the latest) comes first; the filtered feed has AAPL rows only and keeps its filter
    body = everything[everything.index("latency") :]
    assert body.index("MSFT") < body.index("AAPL")
    rows = _text(only[only.index("<tbody>") :])
    assert "AAPL" in rows
    assert "MSFT" not in rows
    assert 'hx-get="/ui/panels/feed?symbol=AAPL"' in only


def test_health_reports_latency_percentiles_queue_and_mode(cockpit: Cockpit) -> None:
    # GIVEN three decisions  WHEN the health panel is read with Redis down
    cockpit.decide(*_aligned())
    html = _text(cockpit.client.get("/ui/panels/health").text)
    assert re.search(r"p50 \d+ ms · p99 \d+ ms over 3 decisions", html)
    assert "3 waiting" in html
    assert "normal" in html
    cockpit.engine.cache.down = True
    cockpit.engine.circuit.failed("test")
    degraded = _text(cockpit.client.get("/ui/panels/health").text)
    # THEN it says degraded and that Redis is unavailable
    assert "degraded" in degraded
    assert "Redis unavailable" in degraded


def test_the_board_still_answers_from_the_tables_when_redis_is_down(cockpit: Cockpit) -> None:
    # GIVEN a decision, then Redis down
    cockpit.decide(*_aligned())
    cockpit.engine.cache.down = True
    cockpit.engine.circuit.failed("test")
    # WHEN the board is read  THEN it comes from the table and still shows the decision
    html = cockpit.client.get("/ui/panels/board", headers={"HX-Request": "true"}).text
    stored = cockpit.engine.decisions.latest("AAPL")
    assert stored is not None
    assert "from table" in html
    assert f'data-decision="{stored.decision_id}"' in html


def test_the_chart_carries_alert_prices_and_decision_markers(cockpit: Cockpit) -> None:
    # GIVEN aligned buys with prices  WHEN the chart panel is read for AAPL
    cockpit.decide(*_aligned())
    html = cockpit.client.get("/ui/panels/chart", params={"symbol": "AAPL"}).text
    # THEN it embeds one point per alert and an up-arrow for the buy decisions
    data = html[html.index("data-chart='") :]
    assert data.count('"value": 190.0') == 3
    assert '"shape": "arrowUp"' in data


def test_the_ledger_panel_says_it_is_not_installed_rather_than_guess(cockpit: Cockpit) -> None:
    html = _text(cockpit.client.get("/ui/panels/ledger").text)
    assert "execution ledger is not installed" in html


def test_a_malformed_symbol_filter_is_a_422_naming_the_field(cockpit: Cockpit) -> None:
    # WHEN the filter carries markup  THEN 422 naming `symbol`, nothing rendered
    response = cockpit.client.get("/ui/panels/feed", params={"symbol": "<script>"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "symbol"]


def test_vendored_files_are_served_with_their_notices(cockpit: Cockpit) -> None:
    # WHEN the page's scripts and the notices are fetched  THEN they come from the engine itself
    for path in (
        "/ui/static/vendor/htmx-2.0.11.min.js",
        "/ui/static/vendor/lightweight-charts-5.2.1.standalone.production.js",
        "/ui/static/cockpit.css",
    ):
        assert cockpit.client.get(path).status_code == 200, path
    notice = cockpit.client.get("/ui/static/vendor/NOTICE.txt").text
    assert "TradingView, Inc." in notice
    assert "Apache License" in notice
    page = cockpit.client.get("/ui").text
    assert 'href="https://www.tradingview.com/"' in page
    assert "cdn" not in page.lower()
    assert "https://unpkg" not in page


def test_the_cockpit_and_its_files_need_a_caller(cockpit: Cockpit) -> None:
    # GIVEN a browser with no session  WHEN it opens the cockpit, a panel, a vendored file
    anonymous = TestClient(cockpit.client.app, base_url="http://localhost")
    page = anonymous.get("/ui", headers={"Accept": "text/html"}, follow_redirects=False)
    panel = anonymous.get("/ui/panels/board", follow_redirects=False)
    script = anonymous.get("/ui/static/cockpit.js", follow_redirects=False)
    # THEN the page sends it to the login form; the rest is refused
    assert page.status_code in {302, 303, 307}
    assert page.headers["location"].startswith("/login")
    assert panel.status_code == 401
    assert script.status_code == 401


def test_a_signed_in_person_gets_pages_carrying_the_csrf_token(cockpit: Cockpit) -> None:
    # GIVEN a person signed in with the engine token (a session cookie, no bearer header)
    person = TestClient(cockpit.client.app, base_url="http://localhost")
    csrf = sign_in(person)
    # WHEN the cockpit is opened
    html = person.get("/ui").text
    # THEN htmx requests and the sign-out form carry the session's CSRF token
    assert f'"X-CSRF-Token": "{csrf}"' in html
    assert f'name="csrf_token" value="{csrf}"' in html
    # AND signing out with that token ends the session
    out = person.post("/logout", data={"csrf_token": csrf}, headers={"Accept": "text/html"},
                      follow_redirects=False)  # fmt: skip
    assert out.status_code == 303
    assert person.get("/ui/panels/board").status_code == 401


def test_the_sign_in_page_is_styled_without_opening_anything_else(cockpit: Cockpit) -> None:
    # GIVEN a browser with no session
    anonymous = TestClient(cockpit.client.app, base_url="http://localhost")
    # WHEN it opens the sign-in page and the stylesheet it links
    page = anonymous.get("/login")
    style = anonymous.get("/ui/static/login.css")
    # THEN both are served, the page's policy allows only same-origin styles, and the
    # cockpit's own files stay behind the session
    assert '<link rel="stylesheet" href="/ui/static/login.css">' in page.text
    assert "style-src 'self'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]
    assert style.status_code == 200
    assert "text/css" in style.headers["content-type"]
    assert anonymous.get("/ui/static/cockpit.css").status_code == 401


def test_pages_allow_only_this_origin_and_no_inline_script(cockpit: Cockpit) -> None:
    # WHEN the cockpit is served
    response = cockpit.client.get("/ui")
    policy = response.headers["content-security-policy"]
    # THEN scripts come only from the engine itself, never inline or evaluated, and the page
    # cannot be framed; htmx is told not to evaluate or inject anything either
    assert "script-src 'self';" in policy
    assert "unsafe" not in policy
    assert "frame-ancestors 'none'" in policy
    assert "'sha256-" in policy  # the chart's attribution logo style, and only it
    assert response.headers["x-frame-options"] == "DENY"
    assert '"allowEval": false' in response.text
    assert "<script>" not in response.text
