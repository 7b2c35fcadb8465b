"""Execution: the order lifecycle, the book, and exactly one order per actionable decision.

A pure core over two ports: the ``Ledger`` (shared by every engine task, DynamoDB in
``kyperian.adapters.aws.ledger``) and the broker contract (``kyperian.domain.brokers``,
implemented by the venues). It never imports a venue or an AWS client.
"""

from kyperian.execution.book import Book, LedgerAccount, LedgerPosition, apply_fill, fold_fills
from kyperian.execution.executor import Execution, ExecutionKind, OrderExecutor
from kyperian.execution.orders import (
    TRANSITIONS,
    AccountKey,
    IllegalTransition,
    LedgerFill,
    LedgerOrder,
    OrderState,
    apply_venue_order,
    transition,
)
from kyperian.execution.ports import Ledger, OrderExists, StaleRecord
from kyperian.execution.reconcile import Mismatch, compare
from kyperian.execution.risk import BookLimits, book_veto

__all__ = [
    "TRANSITIONS",
    "AccountKey",
    "Book",
    "BookLimits",
    "Execution",
    "ExecutionKind",
    "IllegalTransition",
    "Ledger",
    "LedgerAccount",
    "LedgerFill",
    "LedgerOrder",
    "LedgerPosition",
    "Mismatch",
    "OrderExecutor",
    "OrderExists",
    "OrderState",
    "StaleRecord",
    "apply_fill",
    "apply_venue_order",
    "book_veto",
    "compare",
    "fold_fills",
    "transition",
]
