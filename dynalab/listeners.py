"""Callbacks told of an event from inside a loop that must go on (a driver's turn, an apply):
each listener only notes the event, and one that raises is logged, never let through."""
from __future__ import annotations

import logging
from typing import Callable, Generic, ParamSpec

__all__ = ["Listeners"]

log = logging.getLogger(__name__)

P = ParamSpec("P")


class Listeners(Generic[P]):
    def __init__(self, what: str) -> None:
        self._what = what  # named in the log when one fails
        self._listeners: list[Callable[P, None]] = []

    def add(self, listener: Callable[P, None]) -> None:
        self._listeners.append(listener)

    def tell(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in self._listeners:
            try:
                listener(*args, **kwargs)
            except Exception:  # a listener's bug must not stop the loop that tells it
                log.exception("%s failed on %r", self._what, args)
