"""The Ledger table in in-process moto, made by deploying the real data stack."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kyperian.adapters.aws.ledger import DynamoLedger
from kyperian.adapters.aws.paper_venue import DynamoPaperVenueStore
from kyperian.adapters.brokers.paper import PaperBroker, PaperBrokerConfig
from kyperian.domain.brokers import Broker
from kyperian.execution import AccountKey, OrderExecutor
from kyperian.local.templates import deploy

REGION = "us-east-1"
_ACCOUNTS = itertools.count(1)


class Clock:
    """Wall time the test moves by hand (leases and approvals expire on it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class LedgerAws:
    dynamodb: Any
    table: str
    clock: Clock

    def ledger(self) -> DynamoLedger:
        return DynamoLedger(self.table, self.dynamodb)

    def new_account(self) -> str:
        """A fresh account id: examples share the table but never a book."""
        return f"acct{next(_ACCOUNTS)}"

    def venue(self, account_id: str) -> PaperBroker:
        """A paper venue on its own books in the ledger table (a new 'process' each call)."""
        store = DynamoPaperVenueStore(self.table, self.dynamodb, account_id)
        return PaperBroker(store, PaperBrokerConfig(account_id=account_id), clock=self.clock)

    def executor(
        self, account_id: str, venue: Broker | None = None, **kwargs: Any
    ) -> OrderExecutor:
        """An engine task's executor: its own objects, the shared table."""
        return OrderExecutor(
            self.ledger(),
            venue or self.venue(account_id),
            AccountKey(venue="paper", account_id=account_id),
            clock=self.clock,
            **kwargs,
        )


@pytest.fixture(scope="module")
def _moto() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        outputs = deploy(boto3.client("cloudformation", region_name=REGION), "data", "test")
        yield client, outputs["LedgerTableName"]


@pytest.fixture
def ledger_aws(_moto: Any) -> LedgerAws:
    client, table = _moto
    return LedgerAws(client, table, Clock())
