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
Powertools' ``Metrics``; they are read when it is made and when its dimensions are set
(once per container: a Lambda's environment does not change while it runs). It keeps
per-invocation state: one instance per process, used by one request at a time, as a Lambda
execution environment does.
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
_Directive = tuple[tuple[tuple[str, ...], ...], tuple[tuple[str, Unit], ...]]
"""A metric directive as data: its dimension sets, and its metrics' names and units."""
_Shape = tuple[_Directive, ...]
_SHAPES_KEPT: Final = 64
_COMPACT: Final = json.JSONEncoder(separators=(",", ":"))
"""``json.dumps(value, separators=(",", ":"))`` builds this encoder on every call: built once."""


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
    clock
        Epoch seconds, for the documents' time stamp.
    """

    namespace: str
    write: Callable[[str], object] = field(default=lambda line: sys.stdout.write(line))
    _dimensions: dict[str, str] = field(default_factory=dict)
    _values: dict[str, list[float]] = field(default_factory=dict)
    _units: dict[str, Unit] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    _breakdowns: list[_Breakdown] = field(default_factory=list)
    _disabled: bool = field(default_factory=is_metrics_disabled)
    _texts: dict[_Shape, str] = field(default_factory=dict)

    def set_dimensions(self, **dimensions: str) -> None:
        """The dimensions every metric carries (``service``, ``environment``).

        Also reads again whether metrics are disabled.
        """
        self._dimensions = dict(dimensions)
        self._disabled = is_metrics_disabled()

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
        pending = self._pending()
        self.clear()
        if pending and not self._disabled:
            self.write("".join(self._line(*document) for document in pending))

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
        return [
            {"_aws": {"Timestamp": stamp, "CloudWatchMetrics": self._directives(shape)}, **root}
            for stamp, shape, root in self._pending()
        ]

    def _pending(self) -> list[tuple[int, _Shape, dict[str, Any]]]:
        """Each document to print: its time stamp, its directives' shape, its root members."""
        if not self._values and not self._breakdowns:
            return []
        stamp = int(self.clock() * 1000)
        dimensions = tuple(self._dimensions)
        separate: list[tuple[int, _Shape, dict[str, Any]]] = []
        main: dict[str, Any] | None = None
        main_shape: list[_Directive] = []
        if self._values:
            main = {**self._dimensions, **self._values}
            metrics = tuple((name, self._units[name]) for name in self._values)
            main_shape.append(((dimensions,), metrics))
        broken_down: set[str] = set()
        for breakdown in self._breakdowns:
            sets = tuple((*dimensions, extra) for extra in breakdown.by)
            directive = (sets, ((breakdown.name, breakdown.unit),))
            if main is not None and self._joins(main, broken_down, breakdown):
                main_shape.append(directive)
                main.update(breakdown.by)
                broken_down.add(breakdown.name)
            else:
                root = {**self._dimensions, breakdown.name: [breakdown.value], **breakdown.by}
                separate.append((stamp, (directive,), root))
        if main is None:
            return separate
        return [(stamp, tuple(main_shape), main), *separate]

    def _joins(self, main: dict[str, Any], broken_down: set[str], breakdown: _Breakdown) -> bool:
        """Whether the main document's member for this metric holds this value alone."""
        return (
            main.get(breakdown.name) == [breakdown.value]
            and self._units.get(breakdown.name) == breakdown.unit
            and breakdown.name not in broken_down  # one breakdown per metric and document
            and all(main.get(key, value) == value for key, value in breakdown.by.items())
        )

    def _directives(self, shape: _Shape) -> list[dict[str, Any]]:
        return [
            {
                "Namespace": self.namespace,
                "Dimensions": [list(dimension_set) for dimension_set in sets],
                "Metrics": [{"Name": name, "Unit": unit} for name, unit in metrics],
            }
            for sets, metrics in shape
        ]

    def _line(self, stamp: int, shape: _Shape, root: dict[str, Any]) -> str:
        """``json.dumps`` of the document, compact, with its directives' text reused.

        A request's directives repeat from one request to the next (same metrics, same
        dimension names); only the time stamp and the root members change.
        """
        directives = self._texts.get(shape)
        if directives is None:
            if len(self._texts) >= _SHAPES_KEPT:
                self._texts.clear()
            directives = _COMPACT.encode(self._directives(shape))
            self._texts[shape] = directives
        members = _COMPACT.encode(root)  # never empty: it holds the values
        return f'{{"_aws":{{"Timestamp":{stamp},"CloudWatchMetrics":{directives}}},{members[1:]}\n'
