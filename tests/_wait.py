"""wait_until: the one way tests wait for something that must happen (an event, a state change).

The limit is a safety bound that only a hang reaches, never a slow or busy machine; nothing asserts
that something happened within a given time.
"""
from __future__ import annotations

import time


def wait_until(predicate, what: str, limit: float = 60.0, poll: float = 0.02):
    """Polls ``predicate`` until it returns a true value (returned); fails after ``limit`` s."""
    deadline = time.monotonic() + limit
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what}: not within {limit} s"
        time.sleep(poll)
