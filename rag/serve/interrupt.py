"""Ctrl-C and SIGTERM during a long write: finish the current batch, keep what is stored, then stop.

A second signal acts as it would have without us (KeyboardInterrupt, or the
default SIGTERM exit): nothing is lost either way, since every batch is stored
whole and an interrupted document is resumed by the next ingest.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(request_stop: Callable[[str], None],
                    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM calls `request_stop(signal name)` instead of exiting."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, object] = {}

    def handler(signum, _frame):
        signal.signal(signum, previous[signum])  # the next one stops at once
        request_stop(signal.Signals(signum).name)

    for sig in signals:
        previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
