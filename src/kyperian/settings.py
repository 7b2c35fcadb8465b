"""One settings object for every process, read from ``KYPERIAN_*`` environment variables.

Defaults are the embedded local stack's, so ``make run`` needs no configuration; on AWS
the CloudFormation templates set the variables. Resource names default to the
``kyperian-<environment>-...`` convention the templates use. Read settings through
``get_settings()`` (cached) so tests can clear the cache and override them.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kyperian.domain.notices import DEFAULT_KINDS, NoticeKind
from kyperian.fusion.rules import FusionRules


class Settings(BaseSettings):
    """Configuration of the webhook validator, the engine and the local stack."""

    model_config = SettingsConfigDict(env_prefix="KYPERIAN_", extra="ignore", frozen=True)

    environment: str = Field(default="local", pattern=r"^[a-z][a-z0-9-]{1,20}$")
    """Deployment environment; part of every resource name (KYPERIAN_ENVIRONMENT)."""

    aws_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("KYPERIAN_AWS_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"),
    )
    aws_endpoint_url: str | None = None
    """Endpoint for every AWS client (moto locally); unset on AWS (KYPERIAN_AWS_ENDPOINT_URL)."""
    aws_connect_timeout: float = 1.0
    aws_read_timeout: float = 2.0
    aws_max_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts per AWS call, the first included (botocore 'standard' mode's
    ``total_max_attempts``): kept low to answer TradingView within 3 s."""

    signals_table: str = ""
    """Signals table name; default ``kyperian-<environment>-signals``."""
    decisions_table: str = ""
    """Decisions table name; default ``kyperian-<environment>-decisions``."""
    event_bus_name: str = ""
    """EventBridge bus name; default ``kyperian-<environment>-bus``."""
    signal_queue_url: str | None = None
    """SQS work queue the engine consumes (KYPERIAN_SIGNAL_QUEUE_URL)."""

    api_key_secret_id: str = ""
    """Secrets Manager id of the webhook API key; default ``/kyperian/<environment>/api/key``."""
    origin_secret_id: str | None = None
    """Secret CloudFront sends as ``X-Origin-Verify``; unset = header not required (local)."""
    secret_max_age_seconds: int = Field(default=300, ge=0)
    """How long a Lambda keeps a secret cached before reading it again (key rotation lag)."""
    api_key_grace_seconds: int = Field(default=86400, ge=0)
    """After a rotation, how long the previous key (AWSPREVIOUS) is still accepted, so alerts
    can be updated; 0 accepts only the current key. A leaked key is revoked instead (runbook)."""

    max_body_bytes: int = Field(default=16 * 1024, ge=256)
    signal_ttl_days: int = Field(default=7, ge=1)
    decision_ttl_days: int = Field(default=30, ge=1)
    max_clock_skew_seconds: int = Field(default=300, ge=0)
    """How far in the future an alert's own timestamp may be before it is rejected."""
    publish_attempts: int = Field(default=3, ge=1, le=10)
    """Attempts to publish entries EventBridge reports as failed, before answering 503."""

    # --- ingest: give-up budget and sweeper (issue 17) ---
    # The webhook Lambda times out at 10 s; what it stored must be undone before that. Worst
    # case: a store call (2 x (0.5 + 1.0) s + <= 1 s backoff), the publish budget (3 s + one
    # last attempt's 1.5 s), the undo (one call, as the store); measured < 9 s in
    # tests/integration/ingest/test_faults.py.
    ingest_aws_connect_timeout: float = Field(default=0.5, gt=0, le=2)
    """Webhook Lambda: connect timeout of its AWS calls, seconds."""
    ingest_aws_read_timeout: float = Field(default=1.0, gt=0, le=2)
    """Webhook Lambda: read timeout of its AWS calls, seconds."""
    ingest_aws_max_attempts: int = Field(default=2, ge=1, le=3)
    """Webhook Lambda: attempts per DynamoDB / Secrets Manager call, the first included
    (publishing makes one per call and retries on its own, within ``publish_budget_seconds``)."""
    publish_budget_seconds: float = Field(default=3.0, gt=0, le=4)
    """No publish attempt starts after this many seconds; then the store is undone (503)."""
    sweep_after_seconds: int = Field(default=120, ge=30)
    """The sweeper publishes rows still pending this long after arrival (past any Lambda)."""
    sweep_batch: int = Field(default=100, ge=1, le=1000)
    """Rows the sweeper handles per run (it runs every minute)."""

    # --- local stack (make run) ---
    api_key: SecretStr | None = None
    """Local stack only: the webhook key to seed (KYPERIAN_API_KEY); generated when unset."""
    local_aws_port: int = Field(default=4566, ge=1, le=65535)
    """Port of the AWS emulator (moto in server mode) on 127.0.0.1."""
    gateway_port: int = Field(default=8080, ge=1, le=65535)
    """Port of the local HTTP API gateway in front of the webhook handler."""
    engine_port: int = Field(default=8000, ge=1, le=65535)
    """Port of the engine service (the specification's ECS container port)."""
    throttle_rate: float = Field(default=50, gt=0)
    """Gateway stage throttle: sustained requests per second (the specification's 50)."""
    throttle_burst: int = Field(default=100, ge=1)
    """Gateway stage throttle: burst (the specification's 100)."""
    gateway_instances: int = Field(default=4, ge=1, le=32)
    """Local gateway: warm handler processes, each serving one request at a time."""

    # --- engine ---
    redis_host: str = "127.0.0.1"
    """Redis/ElastiCache primary endpoint (KYPERIAN_REDIS_HOST; SSM ``/kyperian/redis/host``)."""
    redis_port: int = Field(default=6379, ge=1, le=65535)
    """Redis port (KYPERIAN_REDIS_PORT; SSM ``/kyperian/redis/port``)."""
    redis_tls: bool = False
    """TLS (``rediss://``), which ElastiCache in-transit encryption needs (KYPERIAN_REDIS_TLS)."""
    redis_auth_token: SecretStr | None = None
    """ElastiCache AUTH token, injected from Secrets Manager (KYPERIAN_REDIS_AUTH_TOKEN)."""
    redis_max_connections: int = Field(default=20, ge=1, le=20)
    """Connection pool size; the specification caps it at 20."""
    redis_socket_timeout: float = Field(default=0.25, gt=0)
    """Seconds before a Redis call counts as failed and the engine decides from the table."""
    redis_retry_seconds: float = Field(default=5.0, gt=0)
    """While Redis is down, how often the engine tries it again (recovery is automatic)."""
    worker_enabled: bool = True
    """Run the SQS worker inside the service (KYPERIAN_WORKER_ENABLED)."""
    worker_batch_size: int = Field(default=10, ge=1, le=10)
    """Messages per ``ReceiveMessage`` (SQS allows at most 10)."""
    worker_wait_seconds: int = Field(default=10, ge=0, le=20)
    """Long-poll wait; kept under the 30 s stop timeout so SIGTERM is honoured in time."""
    worker_visibility_seconds: int = Field(default=60, ge=5, le=43200)
    """How long a received message stays hidden; also the processing lease in Redis."""
    worker_shutdown_seconds: float = Field(default=25.0, gt=0, le=30)
    """How long shutdown waits for the worker to finish its batch (ECS kills at 30 s)."""
    processed_marker_ttl_seconds: int = Field(default=86400, ge=60)
    """How long Redis remembers a processed signal id (the Decisions table remembers longer)."""
    # --- execution (ledger, orders, approvals) ---
    ledger_table: str = ""
    """Ledger table name (orders, fills, positions, cash); default ``kyperian-<env>-ledger``."""
    auto_trading: bool = False
    """Turn actionable decisions into orders at the venue (KYPERIAN_AUTO_TRADING); off, they
    are only recorded, and exposure still comes from the ledger's book."""
    approval_mode: bool = False
    """Orders wait as pending until a person approves them (KYPERIAN_APPROVAL_MODE)."""
    approval_seconds: int = Field(default=900, ge=10)
    """How long a pending order waits for approval before it expires."""
    order_lease_seconds: int = Field(default=30, ge=1, le=600)
    """How long a worker that submitted an order owns its outcome; after that another
    worker reconciles it with the venue. Longer than a venue call, shorter than visibility."""
    max_gross_exposure: float = Field(default=1.0, gt=0, le=10)
    """Risk on the whole book: the sum of every symbol's committed exposure (open orders
    included) may not pass this fraction of equity; a breach vetoes the entry."""
    reconcile_seconds: float = Field(default=60.0, ge=1)
    """How often the ledger is reconciled with the venue (also once at start)."""
    paper_account_id: str = Field(default="paper", pattern=r"^[A-Za-z0-9_.-]+$")
    """The paper venue's account id: one account shared by every task and every restart."""
    paper_starting_cash: Decimal = Field(default=Decimal(100000), gt=0)
    """Cash the paper account starts with (only when it is first opened)."""
    broker_credentials: SecretStr | None = None
    """Live venues' credentials (JSON), from Secrets Manager (KYPERIAN_BROKER_CREDENTIALS).

    One section per venue (``alpaca``, ``schwab``, ``ibkr``), shape in docs/brokers.md; the
    paper venue needs none.
    """

    # --- book risk ---
    max_daily_loss: float = Field(default=0.05, ge=0, le=1)
    """No new entry once the loss since 00:00 UTC (realized plus unrealized at the last known
    prices) reaches this fraction of the day's opening equity; 0 disables."""
    max_orders_per_minute: int = Field(default=30, ge=0)
    """No new order once the account has this many orders in the ledger from the last 60 s
    (every task sees the same count); 0 disables."""
    stop_out_cooldown_seconds: int = Field(default=900, ge=0)
    """No new entry on a symbol for this long after a position on it was closed at a loss
    (definition in ``kyperian.execution.risk``); 0 disables."""

    # --- live brokers (docs/brokers.md) ---
    broker_venue: Literal["paper", "alpaca", "ibkr", "schwab"] = "paper"
    """Which venue executes decisions when auto-trading (KYPERIAN_BROKER_VENUE, default paper).
    A live venue must be configured, or the engine refuses to start."""
    broker_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Timeout of one call to a live venue; a submit that times out is reconciled, not retried."""
    broker_symbol_overrides: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Per venue, TradingView symbol -> venue symbol, winning over the mapping rules (JSON:
    ``{"alpaca": {"BTCUSD": "BTC/USD"}}``); an empty value refuses the symbol."""
    schwab_token_secret_id: str = ""
    """Secrets Manager id of the shared Schwab OAuth token, which ``kyperian broker login
    schwab`` writes; default ``/kyperian/<environment>/broker/schwab-token``."""
    schwab_live_orders: bool = False
    """Schwab has no paper environment: orders are refused unless this is true."""
    schwab_account_number: str | None = None
    """Which Schwab account trades (its plain number); default the first linked account."""
    ibkr_host: str | None = None
    """IB Gateway host (KYPERIAN_IBKR_HOST; ``127.0.0.1`` for the sidecar); unset = IB off."""
    ibkr_port: int = Field(default=4002, ge=1, le=65535)
    """IB Gateway API port: 4002 paper, 4001 live."""
    ibkr_client_id: int = Field(default=17, ge=0)
    """API client id; one per connected process."""
    ibkr_account: str | None = None
    """IB account to trade and report (default the gateway's first managed account)."""

    fusion: FusionRules = Field(default_factory=lambda: _fusion_rules_from_env())
    """Fusion rules, each read from ``KYPERIAN_FUSION_<RULE>`` (see docs/fusion.md)."""

    # --- notifications and cockpit (docs/cockpit.md) ---
    notify_telegram_secret_id: str | None = None
    """Secrets Manager id of ``{"bot_token", "chat_id"}``; unset = no Telegram."""
    notify_discord_secret_id: str | None = None
    """Secrets Manager id of ``{"webhook_url"}`` (a Discord webhook); unset = no Discord."""
    notify_slack_secret_id: str | None = None
    """Secrets Manager id of ``{"webhook_url"}`` (a Slack incoming webhook); unset = no Slack."""
    notify_sns_topic_arn: str | None = None
    """SNS topic whose e-mail subscribers get notices; unset = no e-mail."""
    notify_telegram_events: frozenset[NoticeKind] = DEFAULT_KINDS
    """Kinds Telegram gets, as JSON (``["decision","veto"]``); add ``decision_other`` for all."""
    notify_discord_events: frozenset[NoticeKind] = DEFAULT_KINDS
    notify_slack_events: frozenset[NoticeKind] = DEFAULT_KINDS
    notify_sns_events: frozenset[NoticeKind] = DEFAULT_KINDS
    notify_symbols: frozenset[str] = frozenset()
    """Only these symbols' notices (JSON list, upper case); empty = every symbol."""
    notify_telegram_api_url: str = "https://api.telegram.org"
    """Bot API base URL (a local receiver in tests)."""
    notify_queue_size: int = Field(default=1000, ge=1, le=100000)
    """Notices waiting per channel before the overflow is dead-lettered."""
    notify_attempts: int = Field(default=4, ge=1, le=10)
    """Tries per notice and channel (retrying only temporary failures)."""
    notify_backoff_seconds: float = Field(default=2.0, ge=0, le=60)
    """First retry delay; doubled on each retry, capped at 60 s."""
    symbol_index_refresh_seconds: float = Field(default=3600, ge=0)
    """How often a process rewrites a symbol's item in the board's symbol index."""

    # --- alarms to the chat channels (issue 14, docs/cockpit.md) ---
    alarm_watch_seconds: float = Field(default=60, ge=0, le=3600)
    """How often each engine task reads the ``kyperian-<env>-*`` CloudWatch alarms to forward
    their state changes as ``alarm`` notices (one task wins each change); 0 turns it off.
    Off as well when no notification channel is configured."""

    # --- engine authentication ---
    engine_token: SecretStr | None = Field(default=None, min_length=16)
    """The engine API's bearer token (KYPERIAN_ENGINE_TOKEN): local stack and tests. When set,
    it is the only token and Secrets Manager is not read; on AWS leave it unset."""
    engine_token_secret_id: str = ""
    """Secrets Manager id of the engine token; default ``/kyperian/<environment>/engine/token``.
    Read at most every ``secret_max_age_seconds``; AWSPREVIOUS is honoured during the grace."""
    engine_token_grace_seconds: int = Field(default=86400, ge=0)
    """After a rotation, how long the previous engine token (AWSPREVIOUS) is still accepted,
    as for the webhook key; 0 accepts only the current one. A leaked one is revoked instead."""
    engine_session_seconds: int = Field(default=12 * 3600, ge=60, le=7 * 86400)
    """How long a dashboard session cookie lasts after ``POST /login``."""
    local_state_dir: str = ".kyperian"
    """Where ``kyperian up`` keeps the local engine token and API key files (owner-only) and
    where the CLI finds them (KYPERIAN_LOCAL_STATE_DIR)."""

    @model_validator(mode="after")
    def _derive_engine_token_secret(self) -> Settings:
        if not self.engine_token_secret_id:
            secret_id = f"/kyperian/{self.environment}/engine/token"
            object.__setattr__(self, "engine_token_secret_id", secret_id)
        return self

    # --- load (issue 15: throughput of the engine and the local stack) ---
    worker_concurrency: int = Field(default=10, ge=1, le=16)
    """Threads processing a received batch, one symbol per lane, each symbol kept in order
    (KYPERIAN_WORKER_CONCURRENCY); 1 processes a batch one message at a time. With
    ``auto_trading`` the worker uses one lane, so the book's exposure limit stays exact."""

    @model_validator(mode="after")
    def _derive_names(self) -> Settings:
        env = self.environment
        defaults = {
            "signals_table": f"kyperian-{env}-signals",
            "decisions_table": f"kyperian-{env}-decisions",
            "ledger_table": f"kyperian-{env}-ledger",
            "event_bus_name": f"kyperian-{env}-bus",
            "api_key_secret_id": f"/kyperian/{env}/api/key",
            "schwab_token_secret_id": f"/kyperian/{env}/broker/schwab-token",
        }
        for name, value in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, value)
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


class _FusionRulesEnv(FusionRules, BaseSettings):
    """Fusion rules read one by one from ``KYPERIAN_FUSION_*`` (maps and lists as JSON)."""

    model_config = SettingsConfigDict(env_prefix="KYPERIAN_FUSION_", extra="ignore", frozen=True)


def _fusion_rules_from_env() -> FusionRules:
    """Plain ``FusionRules`` (no settings machinery) built from the environment."""
    return FusionRules.model_validate(_FusionRulesEnv().model_dump())
