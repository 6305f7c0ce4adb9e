"""One generation at a time for models that compute in this process, and each caller's place in line."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from contextlib import contextmanager


class GenerationQueue:
    """One generation at a time, first come first served, and who is how far back in line.

    The local model computes one answer at a time; a caller takes a ticket, waits
    for its turn (`wait`, with a timeout so it can report `ahead` meanwhile) and
    calls `leave` when done. A ticket given up before its turn (`leave` too) is skipped.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0  # the next ticket handed out
        self._serving = 0  # the ticket whose turn it is
        self._gone: set[int] = set()

    def join(self) -> int:
        with self._cond:
            ticket = self._next
            self._next += 1
            return ticket

    def ahead(self, ticket: int) -> int:
        """How many callers are before `ticket` (0: its turn)."""
        with self._cond:
            return max(0, ticket - self._serving - sum(1 for t in self._gone if self._serving <= t < ticket))

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """Block until it is `ticket`'s turn (True) or `timeout` seconds pass (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._serving == ticket, timeout)

    def leave(self, ticket: int) -> None:
        """Done (or given up): the next ticket in line gets its turn."""
        with self._cond:
            self._gone.add(ticket)
            while self._serving in self._gone:
                self._gone.discard(self._serving)
                self._serving += 1
            self._cond.notify_all()

    @contextmanager
    def turn(self):
        """`with queue.turn():` wait for a turn without reporting progress."""
        ticket = self.join()
        try:
            self.wait(ticket)
            yield
        finally:
            self.leave(ticket)


class Searches:
    """Searches in flight in this process, so that background model work can step aside for them.

    A question's evidence (retrieval, the best-match sentence) is what a user sees first; the one-time
    read of a fixed prompt prefix at start-up (`LlamaCppChat.warm`) pauses between short batches while
    a search runs, instead of taking every core from it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._running = 0

    @contextmanager
    def running(self):
        with self._cond:
            self._running += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block while a search runs, at most `timeout` seconds (background work is delayed, never starved)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._running == 0, timeout)


searches = Searches()

_queues: dict[Hashable, GenerationQueue] = {}
_queues_lock = threading.Lock()


def generation_queue(chat_model) -> GenerationQueue | None:
    """The process-wide queue of a model that computes in this process (one answer at a time), keyed by
    what it computes with; None for servers (OpenAI-compatible), which answer concurrently."""
    key = getattr(chat_model, "in_process_key", None)
    if key is None:
        return None
    with _queues_lock:
        return _queues.setdefault(key, GenerationQueue())
