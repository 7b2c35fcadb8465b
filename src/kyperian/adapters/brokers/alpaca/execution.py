"""The Alpaca venue over alpaca-py's ``TradingClient``: paper or live by configuration.

alpaca-py retries 429 and 504 answers by itself and sends requests without a timeout; both
are switched off here: a submit is sent exactly once with a timeout (a retried submit after
a lost answer could buy twice), and reads get a bounded retry of our own that honours the
rate limit's ``X-RateLimit-Reset``. Alpaca's answers are read from the raw JSON the
documented API returns, and every failure becomes one of the project's errors:

===============================  ===========================================================
Alpaca answer                    raised
===============================  ===========================================================
401, 403 on reads                ``OperationalError``: keys wrong, revoked, or paper/live mixed
403 insufficient buying power,   ``InvalidOrderError``: the order is refused, do not retry
pattern day trader, 422, 400
market closed (403/422)          ``InvalidOrderError`` ("market closed")
404 on get/cancel                ``InvalidOrderError`` (unknown order)
429                              ``RateLimited`` (a ``TemporaryError`` with ``retry_after``)
5xx, timeout, connection error   ``TemporaryError``; on submit: the outcome is unknown,
                                 reconcile with ``find_order``
===============================  ===========================================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeVar

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
)
from alpaca.trading.requests import OrderRequest as AlpacaOrderRequest

from kyperian.adapters.brokers.alpaca.config import AlpacaConfig
from kyperian.adapters.brokers.alpaca.symbols import AlpacaSymbols
from kyperian.domain.brokers import (
    Account,
    Broker,
    BrokerCapabilities,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)
from kyperian.domain.errors import (
    InvalidOrderError,
    OperationalError,
    RateLimited,
    TemporaryError,
)

T = TypeVar("T")

_STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "done_for_day": OrderStatus.EXPIRED,
    "expired": OrderStatus.EXPIRED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}
_TYPES: dict[str, OrderType] = {
    "market": OrderType.MARKET,
    "limit": OrderType.LIMIT,
    "stop": OrderType.STOP,
    "stop_limit": OrderType.STOP_LIMIT,
}
_TIF_OUT: dict[TimeInForce, AlpacaTif] = {
    TimeInForce.DAY: AlpacaTif.DAY,
    TimeInForce.GTC: AlpacaTif.GTC,
    TimeInForce.IOC: AlpacaTif.IOC,
    TimeInForce.FOK: AlpacaTif.FOK,
}
_DEFAULT_WAIT = 1.0
_MAX_WAIT = 30.0


class _TimeoutSession(requests.Session):
    """A session whose every request carries a timeout (alpaca-py sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


def make_client(config: AlpacaConfig) -> TradingClient:
    """alpaca-py's client with our timeout and without its own retries."""
    client = TradingClient(
        api_key=config.api_key_id.get_secret_value(),
        secret_key=config.api_secret_key.get_secret_value(),
        paper=config.paper,
        raw_data=True,
        url_override=config.url_override,
    )
    # alpaca-py exposes neither setting: a zero retry count can only be set on the instance.
    client._session = _TimeoutSession(config.timeout_seconds)
    client._retry = 0
    return client


def _decimal(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _time(value: Any) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _object(raw: Any) -> dict[str, Any]:
    """A JSON object from Alpaca (``raw_data=True``); anything else is a broken answer."""
    if not isinstance(raw, dict):
        raise TemporaryError(f"alpaca answered {type(raw).__name__} where an object was due")
    return raw


def _list(raw: Any) -> list[Any]:
    if not isinstance(raw, list):
        raise TemporaryError(f"alpaca answered {type(raw).__name__} where a list was due")
    return raw


def _reset_in(response: requests.Response | None, now: float) -> float:
    """Seconds until ``X-RateLimit-Reset`` (a Unix time), within [1, 30]."""
    header = response.headers.get("X-RateLimit-Reset") if response is not None else None
    try:
        wait = float(header) - now if header else _DEFAULT_WAIT
    except ValueError:
        wait = _DEFAULT_WAIT
    return min(_MAX_WAIT, max(_DEFAULT_WAIT, wait))


def _message(exc: APIError) -> str:
    try:
        return str(json.loads(str(exc)).get("message", exc))
    except ValueError:
        return str(exc)[:200]


def classify(exc: Exception, *, submitting: bool = False, clock: float | None = None) -> Exception:
    """The project's error for an alpaca-py or requests failure (see the module table)."""
    unknown = " (the order may have been accepted: reconcile with find_order)" if submitting else ""
    if isinstance(exc, requests.Timeout):
        return TemporaryError(f"alpaca timed out{unknown}")
    if isinstance(exc, requests.RequestException):
        return TemporaryError(f"alpaca unreachable: {type(exc).__name__}{unknown}")
    if isinstance(exc, APIError):
        return _api_error(exc, submitting, unknown, clock or time.time())
    return exc


def _api_error(exc: APIError, submitting: bool, unknown: str, now: float) -> Exception:
    status = exc.status_code or 0
    message = _message(exc)
    lowered = message.lower()
    if status == 429:
        return RateLimited("alpaca rate limit reached", _reset_in(exc.response, now))
    if status == 401 or (status == 403 and not submitting):
        return OperationalError(
            f"alpaca refused the keys ({status} {message}): check the 'alpaca' section of "
            "KYPERIAN_BROKER_CREDENTIALS and that paper/live matches the keys"
        )
    if "market" in lowered and "closed" in lowered:
        return InvalidOrderError(f"alpaca: market closed ({message})")
    if status in {400, 403, 404, 422}:
        return InvalidOrderError(f"alpaca refused the order: {message}")
    return TemporaryError(f"alpaca answered {status}: {message}{unknown}")


class AlpacaBroker(Broker):
    """An Alpaca account (paper or live) behind the broker contract."""

    name: ClassVar[str] = "alpaca"
    capability_overrides: ClassVar[dict[str, bool]] = {
        "stop_orders": True,
        "stop_limit_orders": True,
        "short_selling": True,
        "fractional_quantity": True,
        "bracket_orders": True,
        "replace_orders": True,
        "extended_hours": True,
        "crypto": True,
    }

    def __init__(
        self,
        config: AlpacaConfig,
        client: TradingClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.symbols = AlpacaSymbols(config.symbol_overrides)
        self._client = client or make_client(config)
        self._sleep = sleep

    @property
    def caps(self) -> BrokerCapabilities:
        return self._class_caps.model_copy(update={"paper": self.config.paper})

    # --- calls ------------------------------------------------------------------------

    def _read(self, call: Callable[[], T]) -> T:
        """A read with bounded retries on temporary failures (never used for submits)."""
        for attempt in range(1, self.config.read_attempts + 1):
            try:
                return call()
            except (APIError, requests.RequestException) as exc:
                error = classify(exc)
                wait = error.retry_after if isinstance(error, RateLimited) else 0.5 * 2**attempt
                if (
                    not isinstance(error, TemporaryError)
                    or attempt == self.config.read_attempts
                    or wait > max(self.config.max_read_wait_seconds, 1.0)
                ):
                    raise error from exc
                self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    # --- account and positions --------------------------------------------------------

    def account(self) -> Account:
        raw = _object(self._read(self._client.get_account))
        return Account(
            account_id=str(raw.get("account_number") or raw.get("id")),
            currency=str(raw.get("currency") or "USD"),
            cash=Decimal(str(raw["cash"])),
            equity=Decimal(str(raw["equity"])),
            buying_power=Decimal(str(raw["buying_power"])),
        )

    def positions(self) -> list[Position]:
        return [
            self._position(_object(p)) for p in _list(self._read(self._client.get_all_positions))
        ]

    def _position(self, raw: dict[str, Any]) -> Position:
        quantity = Decimal(str(raw["qty"]))
        if raw.get("side") == "short" and quantity > 0:
            quantity = -quantity
        return Position(
            symbol=self.symbols.from_venue(str(raw["symbol"])),
            quantity=quantity,
            average_price=Decimal(str(raw["avg_entry_price"])),
            market_price=_decimal(raw.get("current_price")),
            market_value=_decimal(raw.get("market_value")),
            unrealized_pnl=_decimal(raw.get("unrealized_pl")),
        )

    # --- orders -----------------------------------------------------------------------

    def _submit(self, request: OrderRequest) -> Order:
        body = self._order_request(request)
        try:
            raw = self._client.submit_order(body)
        except (APIError, requests.RequestException) as exc:
            raise classify(exc, submitting=True) from exc
        return self._order(raw)

    def _order_request(self, request: OrderRequest) -> AlpacaOrderRequest:
        symbol = self.symbols.to_venue(request.symbol)
        common: dict[str, Any] = {
            "symbol": symbol,
            "qty": float(request.quantity),
            "side": AlpacaSide.BUY if request.side is OrderSide.BUY else AlpacaSide.SELL,
            "time_in_force": _TIF_OUT[request.time_in_force],
            "client_order_id": request.client_order_id,
        }
        if request.extended_hours:
            common["extended_hours"] = True
        if request.is_bracket:
            common.update(self._bracket(request))
        try:
            if request.order_type is OrderType.MARKET:
                return MarketOrderRequest(**common)
            if request.order_type is OrderType.LIMIT:
                return LimitOrderRequest(**common, limit_price=float(request.limit_price or 0))
            if request.order_type is OrderType.STOP:
                return StopOrderRequest(**common, stop_price=float(request.stop_price or 0))
            return StopLimitOrderRequest(
                **common,
                limit_price=float(request.limit_price or 0),
                stop_price=float(request.stop_price or 0),
            )
        except ValueError as exc:  # alpaca-py's own request validation
            raise InvalidOrderError(f"alpaca cannot take this order: {exc}") from None

    @staticmethod
    def _bracket(request: OrderRequest) -> dict[str, Any]:
        legs: dict[str, Any] = {}
        if request.take_profit is not None:
            legs["take_profit"] = TakeProfitRequest(limit_price=float(request.take_profit))
        if request.stop_loss is not None:
            legs["stop_loss"] = StopLossRequest(stop_price=float(request.stop_loss))
        both = request.take_profit is not None and request.stop_loss is not None
        legs["order_class"] = OrderClass.BRACKET if both else OrderClass.OTO
        return legs

    def _order(self, answer: Any) -> Order:
        raw = _object(answer)
        status = _STATUS.get(str(raw.get("status")), OrderStatus.ACCEPTED)
        quantity = _decimal(raw.get("qty")) or _decimal(raw.get("filled_qty")) or Decimal(0)
        return Order(
            order_id=str(raw["id"]),
            client_order_id=str(raw["client_order_id"]),
            symbol=self.symbols.from_venue(str(raw.get("symbol") or "")),
            side=OrderSide.BUY if raw.get("side") == "buy" else OrderSide.SELL,
            order_type=_TYPES.get(str(raw.get("type") or raw.get("order_type")), OrderType.MARKET),
            time_in_force=TimeInForce.__members__.get(
                str(raw.get("time_in_force", "day")).upper(), TimeInForce.DAY
            ),
            quantity=quantity,
            filled_quantity=_decimal(raw.get("filled_qty")) or Decimal(0),
            average_fill_price=_decimal(raw.get("filled_avg_price")),
            limit_price=_decimal(raw.get("limit_price")),
            stop_price=_decimal(raw.get("stop_price")),
            status=status,
            submitted_at=_time(raw.get("submitted_at") or raw.get("created_at")),
            updated_at=_time(raw.get("updated_at") or raw.get("submitted_at")),
            reason=f"alpaca status {raw.get('status')}"
            if status in {OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELED}
            else None,
        )

    def get_order(self, order_id: str) -> Order:
        return self._order(self._read(lambda: self._client.get_order_by_id(order_id)))

    def find_order(self, client_order_id: str) -> Order | None:
        try:
            return self._order(
                self._read(lambda: self._client.get_order_by_client_id(client_order_id))
            )
        except InvalidOrderError:
            return None  # 404: Alpaca never saw this client order id

    def cancel_order(self, order_id: str) -> Order:
        try:
            self._client.cancel_order_by_id(order_id)
        except (APIError, requests.RequestException) as exc:
            raise classify(exc) from exc
        return self.get_order(order_id)

    def open_orders(self) -> list[Order]:
        query = GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500)
        return [self._order(o) for o in _list(self._read(lambda: self._client.get_orders(query)))]

    def check(self) -> None:
        """Keys valid and the account able to trade."""
        raw = _object(self._read(self._client.get_account))
        if raw.get("trading_blocked") or raw.get("account_blocked"):
            raise OperationalError("alpaca account is blocked from trading: see the dashboard")
