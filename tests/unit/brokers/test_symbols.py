"""TradingView symbols to each venue's: the rules, the override table, and refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kyperian.adapters.brokers.alpaca.symbols import AlpacaSymbols
from kyperian.adapters.brokers.ibkr.symbols import IbkrSymbols
from kyperian.adapters.brokers.schwab.symbols import SchwabSymbols
from kyperian.adapters.brokers.symbology import Kind, SymbolMapper, parse
from kyperian.domain.errors import InvalidOrderError

MAPPERS: list[type[SymbolMapper]] = [AlpacaSymbols, IbkrSymbols, SchwabSymbols]


@pytest.mark.parametrize(
    ("text", "kind", "base", "quote"),
    [
        ("NASDAQ:AAPL", Kind.EQUITY, "AAPL", None),
        ("BINANCE:BTCUSDT", Kind.CRYPTO, "BTC", "USDT"),
        ("COINBASE:ETHUSD", Kind.CRYPTO, "ETH", "USD"),
        ("BTCUSDT", Kind.CRYPTO, "BTC", "USDT"),
        ("BYBIT:BTCUSDT.P", Kind.PERPETUAL, "BTC", "USDT"),
        ("CME_MINI:ES1!", Kind.FUTURE, "ES", None),
        ("FX:EURUSD", Kind.FOREX, "EUR", "USD"),
        ("NYSE:BRK.B", Kind.EQUITY, "BRK", None),
    ],
)
def test_tradingview_symbols_are_classified(
    text: str, kind: Kind, base: str, quote: str | None
) -> None:
    tv = parse(text)
    assert (tv.kind, tv.base, tv.quote) == (kind, base, quote)


@pytest.mark.parametrize(
    ("text", "alpaca", "ibkr", "schwab"),
    [
        ("NASDAQ:AAPL", "AAPL", "AAPL", "AAPL"),
        ("NYSE:BRK.B", "BRK.B", "BRK B", "BRK/B"),
        ("BINANCE:BTCUSDT", "BTC/USDT", None, None),
        ("COINBASE:BTCUSD", "BTC/USD", "BTC", None),
        ("BINANCE:BTCUSDT.P", None, None, None),
        ("CME_MINI:ES1!", None, None, None),
        ("FX:EURUSD", None, None, None),
    ],
)
def test_each_venue_maps_or_refuses(
    text: str, alpaca: str | None, ibkr: str | None, schwab: str | None
) -> None:
    for mapper, expected in zip(MAPPERS, (alpaca, ibkr, schwab), strict=True):
        if expected is None:
            # A refusal names the venue and the symbol: the decision records it.
            with pytest.raises(InvalidOrderError, match=f"{mapper.venue} cannot trade"):
                mapper().to_venue(text)
        else:
            assert mapper().to_venue(text) == expected


def test_overrides_win_by_exchange_then_ticker_and_may_refuse() -> None:
    mapper = AlpacaSymbols({"COINBASE:BTCUSD": "BTC/USDC", "XYZ": "XYZW", "GME": ""})
    assert mapper.to_venue("COINBASE:BTCUSD") == "BTC/USDC"
    assert mapper.to_venue("BTCUSD", exchange="COINBASE") == "BTC/USDC"
    assert mapper.to_venue("NYSE:XYZ") == "XYZW"
    with pytest.raises(InvalidOrderError, match="overridden"):
        mapper.to_venue("GME")


_TICKER = st.from_regex(r"[A-Z][A-Z0-9._!/&+-]{0,15}", fullmatch=True)
_EXCHANGE = st.one_of(st.none(), st.sampled_from(["NASDAQ", "BINANCE", "FX", "CME", "NYSE"]))


@given(ticker=_TICKER, exchange=_EXCHANGE)
def test_any_symbol_maps_or_is_refused_never_anything_else(
    ticker: str, exchange: str | None
) -> None:
    # GIVEN any symbol the webhook accepts WHEN each venue maps it
    for mapper in MAPPERS:
        try:
            mapped = mapper().to_venue(ticker, exchange)
        except InvalidOrderError:
            continue
        # THEN the answer is a non-empty venue symbol
        assert mapped


@given(root=st.from_regex(r"[A-Z]{1,5}", fullmatch=True), share=st.sampled_from("ABC"))
def test_share_classes_come_back_as_the_engine_names_them(root: str, share: str) -> None:
    engine = f"{root}.{share}"
    assert AlpacaSymbols.from_venue(AlpacaSymbols().to_venue(engine)) == engine
    assert IbkrSymbols.from_venue(IbkrSymbols().to_venue(engine)) == engine
    assert SchwabSymbols.from_venue(SchwabSymbols().to_venue(engine)) == engine
