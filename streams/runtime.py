"""Process-wide runtime tuning shared by the worker and the benchmark's bare Faust baseline."""

from __future__ import annotations

import gc

# Allocations between young-generation collections. CPython's default (700) is meant for small
# heaps; a worker holds a few hundred thousand long-lived objects (Faust, aiokafka, the model)
# and allocates a batch's worth of short-lived ones, so at 700 the collector ran every few
# records and walked the whole heap often: it cost about a third of the worker's CPU.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Fewer, cheaper garbage collections: move what exists at start-up out of the collector's
    sight (`gc.freeze`) and collect the young generation every `GC_YOUNG_THRESHOLD`
    allocations. Reference cycles are still collected."""
    gc.collect()
    gc.freeze()
    _, g1, g2 = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, g1, g2)
