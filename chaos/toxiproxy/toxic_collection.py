"""A proxy's toxics: one ordered chain per direction, applied to every live link of the proxy.

Changes reach connections that are already open, as in Toxiproxy: a new toxic is appended to
each link of its direction, an updated one is restarted in place with the same per-connection
state, a removed one is unlinked after passing on whatever it held.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from chaos.toxiproxy.errors import (
    BAD_REQUEST_BODY,
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    TOXIC_ALREADY_EXISTS,
    TOXIC_NOT_FOUND,
)
from chaos.toxiproxy.stream import Direction
from chaos.toxiproxy.toxics import StatefulToxic, settings_from_json, settings_to_json, toxic_types

__all__ = ["LiveLink", "ToxicCollection", "ToxicSpec", "parse_toxic", "update_toxic"]


@dataclass(frozen=True, slots=True)
class ToxicSpec:
    """A toxic as the API shows it (Toxiproxy's ToxicWrapper); `settings` is the type's
    attributes object, shared by every connection."""

    name: str
    stream: Direction
    toxicity: float
    settings: Any

    @property
    def type_name(self) -> str:
        return str(self.settings.type_name)

    def new_state(self) -> object | None:
        return self.settings.new_state() if isinstance(self.settings, StatefulToxic) else None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "type": self.type_name,
            "stream": self.stream.value,
            "toxicity": self.toxicity,
            "attributes": settings_to_json(self.settings),
        }


def _string(body: dict[str, Any], key: str, default: str) -> str:
    value = body.get(key)
    if value is None:  # absent or null: Go's decoder leaves the default in place for both
        return default
    if not isinstance(value, str):
        raise BAD_REQUEST_BODY(f"{key} must be a string")
    return value


def _toxicity(body: dict[str, Any], default: float) -> float:
    value = body.get("toxicity")
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise BAD_REQUEST_BODY("toxicity must be a number from 0 to 1")
    return float(value)


def _settings(type_name: str, attributes: object, base: Any = None) -> Any:
    try:
        return settings_from_json(toxic_types()[type_name], attributes, base)
    except (ValueError, TypeError) as error:
        raise BAD_REQUEST_BODY(str(error)) from None


def parse_toxic(body: object, exists: Callable[[str], bool]) -> ToxicSpec:
    """A new toxic from a create request. Checks in Toxiproxy's order (so the same bad request
    gets the same error): body, stream, type, duplicate name, attributes."""
    if not isinstance(body, dict):
        raise BAD_REQUEST_BODY("expected a JSON object")
    try:
        stream = Direction(_string(body, "stream", "downstream"))
    except ValueError:
        raise INVALID_STREAM() from None
    type_name = _string(body, "type", "")
    name = _string(body, "name", "") or f"{type_name}_{stream.value}"
    if type_name not in toxic_types():
        raise INVALID_TOXIC_TYPE()
    if exists(name):
        raise TOXIC_ALREADY_EXISTS()
    toxicity = _toxicity(body, 1.0)
    return ToxicSpec(name, stream, toxicity, _settings(type_name, body.get("attributes")))


def update_toxic(spec: ToxicSpec, body: object) -> ToxicSpec:
    """`spec` with the request's attributes and toxicity; attributes not given are kept, and
    name, type and stream cannot change (as in Toxiproxy)."""
    if not isinstance(body, dict):
        raise BAD_REQUEST_BODY("expected a JSON object")
    settings = _settings(spec.type_name, body.get("attributes"), spec.settings)
    return ToxicSpec(spec.name, spec.stream, _toxicity(body, spec.toxicity), settings)


class LiveLink(Protocol):
    """What the collection needs of a connection's link (see link.ToxicLink)."""

    direction: Direction

    def add(self, spec: ToxicSpec) -> None: ...

    async def update(self, spec: ToxicSpec) -> None: ...

    async def remove(self, name: str) -> None: ...


class ToxicCollection:
    def __init__(self) -> None:
        self._chains: dict[Direction, list[ToxicSpec]] = {d: [] for d in Direction}
        self._links: set[LiveLink] = set()
        # Serialises changes (each may wait for links to interrupt their toxics) so every link
        # sees the same sequence of changes and its chain always mirrors ours.
        self._lock = asyncio.Lock()

    def specs(self) -> list[ToxicSpec]:
        """Upstream toxics first, then downstream, each in chain order (Toxiproxy's order)."""
        return [*self._chains[Direction.UPSTREAM], *self._chains[Direction.DOWNSTREAM]]

    def chain(self, direction: Direction) -> tuple[ToxicSpec, ...]:
        return tuple(self._chains[direction])

    def get(self, name: str) -> ToxicSpec:
        for spec in self.specs():
            if spec.name == name:
                return spec
        raise TOXIC_NOT_FOUND()

    def _exists(self, name: str) -> bool:
        return any(spec.name == name for spec in self.specs())

    def attach(self, link: LiveLink) -> None:
        self._links.add(link)

    def detach(self, link: LiveLink) -> None:
        self._links.discard(link)

    def _links_of(self, direction: Direction) -> list[LiveLink]:
        return [link for link in self._links if link.direction is direction]

    async def add(self, body: object) -> ToxicSpec:
        async with self._lock:
            spec = parse_toxic(body, self._exists)
            self._chains[spec.stream].append(spec)
            for link in self._links_of(spec.stream):
                link.add(spec)
            return spec

    async def update(self, name: str, body: object) -> ToxicSpec:
        async with self._lock:
            old = self.get(name)
            new = update_toxic(old, body)
            chain = self._chains[old.stream]
            chain[chain.index(old)] = new
            await asyncio.gather(*(link.update(new) for link in self._links_of(new.stream)))
            return new

    async def remove(self, name: str) -> None:
        async with self._lock:
            await self._remove(self.get(name))

    async def reset(self) -> None:
        async with self._lock:
            for spec in self.specs():
                await self._remove(spec)

    async def _remove(self, spec: ToxicSpec) -> None:
        self._chains[spec.stream].remove(spec)
        await asyncio.gather(*(link.remove(spec.name) for link in self._links_of(spec.stream)))
