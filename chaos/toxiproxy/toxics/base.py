"""The contract every toxic type meets, and the JSON <-> settings plumbing they share.

A toxic type is a frozen dataclass of settings (its JSON `attributes`) with an `async pipe(stub)`
that moves data through one stub. The same settings object serves every connection; anything a
toxic must remember per connection lives in `stub.state`, made by its optional `new_state()`.
Attributes are declared with `attribute("json_name")`, so the Python field can carry its unit
(`latency_ms`) while the JSON keeps Toxiproxy's name (`latency`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Mapping, Protocol, TypeVar, runtime_checkable

from chaos.toxiproxy.stream import ToxicStub

__all__ = [
    "CleanupToxic",
    "StatefulToxic",
    "Toxic",
    "attribute",
    "register",
    "registered",
    "settings_from_json",
    "settings_to_json",
]


@runtime_checkable
class Toxic(Protocol):
    type_name: ClassVar[str]

    async def pipe(self, stub: ToxicStub) -> None:
        """Move items from stub.input to stub.output until the stream ends (then `stub.close`)
        or the task is cancelled (an interrupt: pass on any item held, then re-raise)."""
        ...


@runtime_checkable
class StatefulToxic(Protocol):
    def new_state(self) -> object:
        """Per-connection state; it survives updates of the toxic's settings."""
        ...


@runtime_checkable
class CleanupToxic(Protocol):
    def cleanup(self, stub: ToxicStub) -> None:
        """Called when the toxic is removed from a live connection, after its pipe stopped."""
        ...


T = TypeVar("T")
_REGISTRY: dict[str, type[Any]] = {}


def register(type_name: str) -> Any:
    """Class decorator: make a settings dataclass available as toxic type `type_name`."""

    def wrap(cls: type[T]) -> type[T]:
        if type_name in _REGISTRY:
            raise ValueError(f"toxic type {type_name!r} registered twice")
        cls.type_name = type_name  # type: ignore[attr-defined]
        _REGISTRY[type_name] = cls
        return cls

    return wrap


def registered() -> Mapping[str, type[Any]]:
    return _REGISTRY


def attribute(json_name: str, *, default: int = 0, minimum: int = 0) -> Any:
    """An integer attribute named `json_name` in JSON. Values below `minimum` are rejected
    (Toxiproxy accepts negative durations and treats them as 0; rejecting them catches typos)."""
    return dataclasses.field(default=default, metadata={"json": json_name, "minimum": minimum})


def _integer(name: str, value: object, minimum: int) -> int:
    # bool is an int in Python but not a number in JSON.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"attribute {name!r} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"attribute {name!r} must be >= {minimum}, got {value!r}")
    return int(value)


def settings_from_json(cls: type[T], attributes: object, base: T | None = None) -> T:
    """Validate JSON `attributes` into settings of type `cls`. Keys not given keep `base`'s values
    (an update) or the defaults (a create); unknown keys are ignored, as Toxiproxy does.
    Raises ValueError, also from the class's own __post_init__ checks."""
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise ValueError("attributes must be a JSON object")
    values: dict[str, int] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.metadata.get("json")
        if name is not None and name in attributes:
            values[field.name] = _integer(name, attributes[name], field.metadata["minimum"])
    if base is not None:
        return dataclasses.replace(base, **values)  # type: ignore[type-var]
    return cls(**values)


def settings_to_json(settings: object) -> dict[str, int]:
    return {
        field.metadata["json"]: getattr(settings, field.name)
        for field in dataclasses.fields(settings)  # type: ignore[arg-type]
        if "json" in field.metadata
    }
