"""The worker's queue: first in, first out, bounded. When it is full, the oldest peer
message waiting is dropped to make room (a peer can resend, gossip heals by
anti-entropy); operator commands are never dropped, so the bound holds for peer input
and an operator's command is always accepted."""
from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable


@dataclass
class Item:
    fn: Callable[[], object]
    future: Future
    droppable: bool          # a peer message or notification, not an operator command
    # Read-only work done ahead of `fn`, for the whole batch before any of it is applied:
    # gathering the questions its `fn` will ask lightningd, so they are asked together.
    prepare: Callable[[], object] | None = None


class WorkQueue:
    def __init__(self, limit: int):
        self.limit = limit
        self._items: deque[Item] = deque()
        self._cv = threading.Condition()
        self._closed = False

    def put(self, item: Item) -> Item | None:
        """Queue `item`; returns the item dropped to make room, if one was (which may be
        `item` itself: a peer message arriving when only commands wait). Raises
        RuntimeError once closed."""
        with self._cv:
            if self._closed:
                raise RuntimeError("cl-hive is shutting down")
            dropped = None
            if len(self._items) >= self.limit:
                dropped = next((i for i in self._items if i.droppable), None)
                if dropped is not None:
                    self._items.remove(dropped)
                elif item.droppable:
                    return item
            self._items.append(item)
            self._cv.notify()
            return dropped

    def get_batch(self, limit: int) -> list[Item] | None:
        """The next item, waiting for one, and when it is droppable (peer input) every
        droppable item right behind it, up to `limit` in all: the worker applies them in
        one transaction. A command ends the batch, so nothing is reordered. None once
        closed."""
        with self._cv:
            while not self._items and not self._closed:
                self._cv.wait()
            if self._closed:
                return None
            batch = [self._items.popleft()]
            while batch[0].droppable and len(batch) < limit and self._items \
                    and self._items[0].droppable:
                batch.append(self._items.popleft())
            return batch

    def more(self, limit: int) -> list[Item]:
        """Without waiting: the droppable items at the head of the queue, up to `limit`
        (what arrived while a batch of peer input was being prepared joins it)."""
        with self._cv:
            out = []
            while len(out) < limit and self._items and self._items[0].droppable:
                out.append(self._items.popleft())
            return out

    def close(self) -> list[Item]:
        """Refuse further items and wake the worker; returns what was still waiting."""
        with self._cv:
            self._closed = True
            left, self._items = list(self._items), deque()
            self._cv.notify_all()
            return left

    def __len__(self) -> int:
        with self._cv:
            return len(self._items)
