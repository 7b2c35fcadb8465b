"""The webhook's CloudWatch metrics: what one invocation counted, printed as one EMF document.

Powertools' ``single_metric`` prints a document per metric and dimension: an accepted alert
cost four documents (the totals, then one each by action, timeframe and source). The
embedded metric format lets one document carry several metric directives, each with
several dimension sets ("every DimensionSet used creates a new metric in CloudWatch"), so
here an invocation prints one document: the totals under the default dimensions
(``service``, ``environment``) and, in a second directive, a breakdown of one of them by
one extra dimension per set. CloudWatch extracts the same metrics, with the same names,
units, dimensions and values, as from the separate documents.

A breakdown shares the root member that carries its metric's value, so it joins the
document only when that value is the same: one signal accepted, one request rejected. An
alert of several timeframes counts each signal apart, so each of its breakdowns is a
document of its own (still one per signal, not one per dimension).

``POWERTOOLS_METRICS_DISABLED`` (and ``POWERTOOLS_DEV``) silence it, as they silence
Powertools' ``Metrics``. It keeps per-invocation state: one instance per process, used by
one request at a time, as a Lambda execution environment does.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, Final, Literal, TypeVar

from aws_lambda_powertools.metrics.functions import is_metrics_disabled

Unit = Literal["Count", "Milliseconds"]
COUNT: Final[Unit] = "Count"
MILLISECONDS: Final[Unit] = "Milliseconds"

_R = TypeVar("_R")


@dataclass
class _Breakdown:
    """One value of ``name`` counted once under each extra dimension of ``by``."""

    name: str
    unit: Unit
    value: float
    by: Mapping[str, str]


@dataclass
class RequestMetrics:
    """Metrics of one invocation; ``flush`` prints them and starts afresh.

    Parameters
    ----------
    namespace
        The CloudWatch namespace of every metric.
    write
        Where a finished line goes (standard output, which Lambda sends to CloudWatch Logs).
    """

    namespace: str
    write: Callable[[str], object] = field(default=lambda line: sys.stdout.write(line))
    _dimensions: dict[str, str] = field(default_factory=dict)
    _values: dict[str, list[float]] = field(default_factory=dict)
    _units: dict[str, Unit] = field(default_factory=dict)
    _breakdowns: list[_Breakdown] = field(default_factory=list)

    def set_dimensions(self, **dimensions: str) -> None:
        """The dimensions every metric carries (``service``, ``environment``)."""
        self._dimensions = dict(dimensions)

    def add(self, name: str, unit: Unit, value: float) -> None:
        """Count ``value`` under the default dimensions."""
        self._values.setdefault(name, []).append(float(value))
        self._units[name] = unit

    def add_by(self, name: str, unit: Unit, value: float, by: Mapping[str, str]) -> None:
        """Count ``value`` once per extra dimension in ``by`` (each with the default ones).

        Raises
        ------
        ValueError
            ``by`` names the metric itself or a default dimension (one root member each).
        """
        if name in by or not by.keys().isdisjoint(self._dimensions):
            raise ValueError(f"{name} cannot be broken down by {sorted(by)}")
        self._breakdowns.append(_Breakdown(name, unit, float(value), by))

    def clear(self) -> None:
        """Drop what was counted, unprinted."""
        self._values = {}
        self._units = {}
        self._breakdowns = []

    def flush(self) -> None:
        """Print what was counted (unless metrics are disabled), then clear it."""
        documents = self.documents()
        self.clear()
        if documents and not is_metrics_disabled():
            self.write("".join(json.dumps(d, separators=(",", ":")) + "\n" for d in documents))

    def log_metrics(self, handler: Callable[..., _R]) -> Callable[..., _R]:
        """Decorate a Lambda handler: flush when it returns or raises."""

        @wraps(handler)
        def decorated(*args: Any, **kwargs: Any) -> _R:
            try:
                return handler(*args, **kwargs)
            finally:
                self.flush()

        return decorated

    # --- the documents ------------------------------------------------------------------------

    def documents(self) -> list[dict[str, Any]]:
        """The EMF documents of what was counted so far (none when nothing was)."""
        if not self._values and not self._breakdowns:
            return []
        stamp = int(time.time() * 1000)
        main: dict[str, Any] | None = None
        if self._values:
            main = self._document(stamp, self._values, self._units, [list(self._dimensions)])
        separate = []
        for breakdown in self._breakdowns:
            if main is not None and self._joins(main, breakdown):
                self._join(main, breakdown)
            else:
                separate.append(self._alone(stamp, breakdown))
        return ([main] if main is not None else []) + separate

    def _document(
        self,
        stamp: int,
        values: Mapping[str, list[float]],
        units: Mapping[str, Unit],
        dimension_sets: list[list[str]],
    ) -> dict[str, Any]:
        directive = {
            "Namespace": self.namespace,
            "Dimensions": dimension_sets,
            "Metrics": [{"Name": name, "Unit": units[name]} for name in values],
        }
        return {
            "_aws": {"Timestamp": stamp, "CloudWatchMetrics": [directive]},
            **self._dimensions,
            **values,
        }

    def _sets(self, breakdown: _Breakdown) -> list[list[str]]:
        return [[*self._dimensions, extra] for extra in breakdown.by]

    def _joins(self, main: dict[str, Any], breakdown: _Breakdown) -> bool:
        """Whether the main document's member for this metric holds this value alone."""
        if main.get(breakdown.name) != [breakdown.value]:
            return False
        if self._units.get(breakdown.name) != breakdown.unit:
            return False
        directives = main["_aws"]["CloudWatchMetrics"]
        if any(d["Metrics"][0]["Name"] == breakdown.name for d in directives[1:]):
            return False  # already broken down once in this document
        return all(main.get(key, value) == value for key, value in breakdown.by.items())

    def _join(self, main: dict[str, Any], breakdown: _Breakdown) -> None:
        main["_aws"]["CloudWatchMetrics"].append(
            {
                "Namespace": self.namespace,
                "Dimensions": self._sets(breakdown),
                "Metrics": [{"Name": breakdown.name, "Unit": breakdown.unit}],
            }
        )
        main.update(breakdown.by)

    def _alone(self, stamp: int, breakdown: _Breakdown) -> dict[str, Any]:
        document = self._document(
            stamp,
            {breakdown.name: [breakdown.value]},
            {breakdown.name: breakdown.unit},
            self._sets(breakdown),
        )
        document.update(breakdown.by)
        return document
