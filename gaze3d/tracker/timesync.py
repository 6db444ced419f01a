"""Clock offset between a client and the tracker host, estimated like NTP.

Each round trip records the client's send time ``t0``, the tracker's receive
and reply times ``t1``, ``t2`` (its ``CLOCK_MONOTONIC``) and the client's
receive time ``t3``. Then::

    rtt    = (t3 - t0) - (t2 - t1)           # time on the wire, both ways
    offset = ((t1 - t0) + (t2 - t3)) / 2     # tracker clock - client clock

If the two legs took unequal times the offset is wrong by at most ``rtt / 2``,
so the round trip with the smallest ``rtt`` (the least queueing) is kept and
``rtt / 2`` is reported as its accuracy (a bound, not a standard deviation).
"""
from __future__ import annotations

import time
from typing import Callable, NamedTuple, Tuple


class ClockSync(NamedTuple):
    """Result of a clock synchronisation; unpacks as ``(offset_ns, rtt_ns, accuracy_ns)``.

    Attributes
    ----------
    offset_ns : int
        Tracker clock minus client clock: ``t_tracker = t_client + offset_ns``.
    rtt_ns : int
        Network round-trip time of the best exchange.
    accuracy_ns : int
        Bound on the offset error, ``rtt_ns / 2`` rounded up.
    """

    offset_ns: int
    rtt_ns: int
    accuracy_ns: int

    def to_tracker_ns(self, t_client_ns: int) -> int:
        """A client ``time.monotonic_ns()`` reading on the tracker's clock."""
        return int(t_client_ns) + self.offset_ns

    def to_client_ns(self, t_tracker_ns: int) -> int:
        """A tracker ``t_host_ns`` on this client's monotonic clock."""
        return int(t_tracker_ns) - self.offset_ns


def estimate_offset(exchange: Callable[[], Tuple[int, int]], rounds: int = 16,
                    clock: Callable[[], int] = time.monotonic_ns) -> ClockSync:
    """Estimate the clock offset from ``rounds`` round trips, keeping the minimum-RTT one.

    Parameters
    ----------
    exchange : callable
        Performs one round trip and returns the tracker's ``(t_recv_ns, t_send_ns)``.
    rounds : int
        Number of round trips (>= 1).
    clock : callable
        The client clock in ns (``time.monotonic_ns`` by default).
    """
    if int(rounds) < 1:
        raise ValueError(f"rounds: expected >= 1, got {rounds}")
    best = None
    for _ in range(int(rounds)):
        t0 = clock()
        t1, t2 = exchange()
        t3 = clock()
        rtt = (t3 - t0) - (t2 - t1)
        offset = ((t1 - t0) + (t2 - t3)) // 2
        if best is None or rtt < best[0]:
            best = (rtt, offset)
    rtt, offset = best
    rtt = max(int(rtt), 0)
    return ClockSync(offset_ns=int(offset), rtt_ns=rtt, accuracy_ns=(rtt + 1) // 2)
