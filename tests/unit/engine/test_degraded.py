"""The cache circuit: open on failure, one retry per interval, closed and counted on recovery."""

from __future__ import annotations

from kyperian.engine.degraded import CacheCircuit


class _Clock:
    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


def test_the_circuit_opens_retries_once_per_interval_and_recovers() -> None:
    # GIVEN a healthy circuit with a 5 s retry interval
    clock = _Clock()
    circuit = CacheCircuit(retry_seconds=5, clock=clock)
    assert circuit.should_try()
    assert not circuit.degraded

    # WHEN the cache fails
    circuit.failed("down")

    # THEN no attempt is allowed until the interval passes, then exactly one
    assert circuit.degraded
    assert not circuit.should_try()
    clock.value = 5
    assert circuit.should_try()
    assert not circuit.should_try()

    # AND a success closes it and marks a new generation (the cache may have lost keys)
    circuit.succeeded()
    assert not circuit.degraded
    assert circuit.generation == 1
    circuit.succeeded()
    assert circuit.generation == 1
