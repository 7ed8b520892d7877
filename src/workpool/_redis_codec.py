"""How payloads become the bytes of a Redis stream entry, and back."""

from __future__ import annotations

import json
from typing import Any, Protocol, TypeVar, final

__all__ = ["Codec", "JsonCodec", "check_codec"]

T = TypeVar("T")


class Codec(Protocol[T]):
    """Turns a payload into bytes and back; `RedisStream` and `RedisProducer` take one.

    Any object with these two methods is a codec.  ``decode`` may raise any
    `Exception` for bytes it cannot read: the consumer then moves the message
    to the dead-letter stream with that error instead of running a job.
    """

    def encode(self, payload: T, /) -> bytes:
        """The bytes stored in the stream entry for `payload`."""
        ...

    def decode(self, data: bytes, /) -> T:
        """The payload stored as `data`.

        Raises:
            Exception: `data` is not something this codec wrote.
        """
        ...


@final
class JsonCodec:
    """The default codec: JSON text in UTF-8.

    Payloads are whatever `json.dumps` accepts (dicts, lists, strings,
    numbers, booleans and ``None``); they come back as `json.loads` returns
    them, so tuples come back as lists.
    """

    __slots__ = ()

    def encode(self, payload: Any, /) -> bytes:
        """`payload` as compact JSON.

        Raises:
            TypeError: `payload` holds something JSON cannot represent.
            ValueError: `payload` refers to itself.
        """
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def decode(self, data: bytes, /) -> Any:
        """The payload `data` encodes.

        Raises:
            ValueError: `data` is not UTF-8 JSON (`json.JSONDecodeError` and
                `UnicodeDecodeError` are both `ValueError`).
        """
        return json.loads(data)

    def __repr__(self) -> str:
        return "JsonCodec()"


def check_codec(value: object) -> None:
    """Raise TypeError unless `value` looks like a `Codec` instance.

    Checked up front: a wrong codec would otherwise fail on every message,
    each one dead-lettered as undecodable.
    """
    if isinstance(value, type):
        name = value.__qualname__
        raise TypeError(f"codec must be a codec instance, got the class {name} (did you mean {name}()?)")
    if not (callable(getattr(value, "encode", None)) and callable(getattr(value, "decode", None))):
        raise TypeError(
            "codec must be an object with encode(payload) -> bytes and decode(data) -> payload methods, "
            f"such as JsonCodec(), got {type(value).__name__} {value!r}"
        )
