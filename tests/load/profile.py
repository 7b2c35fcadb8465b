"""The load profile: the specification's phases as fixed arrival rates; when each request is due.

The specification sizes the system by signals per minute: Phase 1 100, Phase 2 500 and
Phase 3 2,000, with spikes of ten times. The traffic mix (``locustfile.py``) carries one
signal per request on average (70 % single alerts, 10 % three-timeframe alerts, 10 %
health checks, 10 % invalid alerts), so a rate of requests per second is the same rate of
signals. Arrivals are an open model: request *k* is due at a time drawn from a Poisson
process at the phase's rate, whatever the previous requests are doing, so a slow system
meets the same traffic as a fast one (a closed model, N users waiting for answers, would
slow down with the system and hide its knee). ``Schedule`` hands out those due times.

The default profile starts with a warm-up that is not gated: 200 single alerts at 10/s,
one per symbol, because the engine's first signal of a symbol after it starts reads the
symbol's window back from the Signals table (six queries, its cache refill), a one-off cost
a running system has already paid. Then it climbs: Phase 2 for 60 s, two short steps,
Phase 3 for 60 s, two steps up to the stage throttle's 50/s; the steps locate the knee
(where webhook p99 crosses the budget). ``SPIKE=1`` appends ten seconds at ten times
Phase 3, which the stage throttle must answer with 429s. ``PHASES="name:rate:seconds,..."``
replaces the whole profile.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

PHASE2_RATE = 500 / 60
PHASE3_RATE = 2000 / 60


@dataclass(frozen=True)
class Phase:
    """``rate`` requests a second for ``seconds``; ``gated`` phases carry the issue's budgets."""

    name: str
    rate: float
    seconds: float

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in ":, "):
            raise ValueError(f"phase name {self.name!r}: non-empty, without ':', ',' or spaces")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"phase {self.name}: rate must be a positive number")
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"phase {self.name}: seconds must be a positive number")


WARMUP = "warmup"
"""Not gated: one single alert per symbol, in turn, before the measured phases."""

DEFAULT_PHASES: tuple[Phase, ...] = (
    Phase(WARMUP, 10, 20),
    Phase("phase2", PHASE2_RATE, 60),
    Phase("step16", 16, 20),
    Phase("step24", 24, 20),
    Phase("phase3", PHASE3_RATE, 60),
    Phase("step42", 42, 20),
    Phase("step50", 50, 20),
)
SPIKE = Phase("spike", PHASE3_RATE * 10, 10)


def parse_phases(text: str) -> tuple[Phase, ...]:
    """``"name:rate:seconds,..."`` -> phases (``ValueError`` naming the bad part)."""
    phases = []
    for part in (p.strip() for p in text.split(",")):
        fields = part.split(":")
        if len(fields) != 3:
            raise ValueError(f"phase {part!r}: expected name:rate:seconds")
        name, rate, seconds = fields
        try:
            phases.append(Phase(name, float(rate), float(seconds)))
        except ValueError as exc:
            raise ValueError(f"phase {part!r}: {exc}") from exc
    if not phases:
        raise ValueError("PHASES is empty")
    return tuple(phases)


def profile(phases_text: str | None, spike: bool) -> tuple[Phase, ...]:
    """The phases to run: ``PHASES`` if given, otherwise the default; the spike appended."""
    phases = parse_phases(phases_text) if phases_text else DEFAULT_PHASES
    return (*phases, SPIKE) if spike else phases


def duration(phases: Sequence[Phase]) -> float:
    return sum(p.seconds for p in phases)


def users_needed(phases: Sequence[Phase], budget_seconds: float = 2.0) -> int:
    """Simulated clients enough for the peak rate even if each request took ``budget_seconds``."""
    peak = max(p.rate for p in phases)
    return max(10, math.ceil(peak * budget_seconds))


def phase_at(phases: Sequence[Phase], elapsed: float) -> Phase | None:
    """The phase running ``elapsed`` seconds into the test (None once it is over)."""
    start = 0.0
    for phase in phases:
        if elapsed < start + phase.seconds:
            return phase
        start += phase.seconds
    return None


class Schedule:
    """Due times of a Poisson arrival process whose rate follows the phases.

    ``next_due`` returns the time (seconds from the start) of the next request and the
    phase it belongs to, or None when the profile is over. Within a phase the gaps are
    exponential with mean ``1 / rate``; a gap crossing into the next phase is redrawn
    from that phase's start at the new rate (memorylessness makes this exact).
    """

    def __init__(self, phases: Sequence[Phase], seed: int | None = None) -> None:
        self.phases = tuple(phases)
        self._random = random.Random(seed)
        self._index = 0
        self._phase_start = 0.0
        self._clock = 0.0

    def next_due(self) -> tuple[float, Phase] | None:
        while self._index < len(self.phases):
            phase = self.phases[self._index]
            due = self._clock + self._random.expovariate(phase.rate)
            end = self._phase_start + phase.seconds
            if due < end:
                self._clock = due
                return due, phase
            self._index += 1
            self._phase_start = self._clock = end
        return None
