"""The cyclic garbage collector's pace in a process holding thousands of connections: an
engine, and the benchmarks' load process and raw baselines (measured alike).

CPython's defaults (a young collection every 700 net allocations) suit short scripts. In an
engine holding thousands of viewer connections they stalled the flash-sale second: in
`livecart bench grab --viewers 5000 --stock 1000 --attempts 50000` on this project's
2-core machine, the default pace ran 5 full collections inside a 6.8 s rush, each
0.38-0.54 s with every viewer's answer waiting, and none found any garbage. At
(20000, 10, 10) the same rush ran none and the young collections stayed under 0.13 s;
in interleaved runs of the bench (two each, the same machine) grabs per second went from
6,928 and 11,603 to 14,011 and 13,812, the ratio to raw EVALSHA from 0.275 and 0.439 to
0.561 and 0.463, and p99 from 1,121 and 729 ms to 660 and 533 ms. Young objects are still
collected, and full collections still happen on CPython's rule (after ten middle ones,
once a quarter more objects have survived since the last): only their pace changed.
What the process imported before serving is frozen (`gc.freeze`), so no collection walks
the modules and classes again.
"""

from __future__ import annotations

import gc

# (young, middle, old): collect the young generation every 20,000 net allocations, the
# middle one every 10 young collections, the old one every 10 middle ones (CPython's rule
# of a quarter more long-lived objects still applies to it).
ENGINE_THRESHOLDS = (20_000, 10, 10)


def pace_for_connections() -> None:
    """Set this pace and freeze what is already loaded (call once, at start)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*ENGINE_THRESHOLDS)
