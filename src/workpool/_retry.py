"""`Retry`: which failed jobs a pool runs again, and how long it waits first."""

from __future__ import annotations

import math
import random

import attrs

__all__ = ["Retry"]


def _positive_int(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Retry {attribute.name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"Retry {attribute.name} must be at least 1, got {value!r}")


def _seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Retry {attribute.name} must be a number of seconds, got {type(value).__name__}")
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"Retry {attribute.name} must be a finite number >= 0, got {value!r}")


def _fraction(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"Retry {attribute.name} must be a number, got {type(value).__name__}")
    if not 0 <= value <= 1:
        raise ValueError(f"Retry {attribute.name} must be between 0 and 1, got {value!r}")


def _exception_types(
    instance: object, attribute: attrs.Attribute[tuple[type[Exception], ...]], value: object
) -> None:
    members: tuple[object, ...] = _members(value)
    for t in members:
        if not (isinstance(t, type) and issubclass(t, Exception)):
            raise TypeError(f"Retry retry_on must hold Exception subclasses, got {t!r}")


def _members(value: object) -> tuple[object, ...]:
    if isinstance(value, tuple):
        items: tuple[object, ...] = value  # pyright: ignore[reportUnknownVariableType]
        return items
    return (value,)


def _as_tuple(value: type[Exception] | tuple[type[Exception], ...]) -> tuple[type[Exception], ...]:
    return value if isinstance(value, tuple) else (value,)


@attrs.frozen
class Retry:
    """Run a failed job again, with exponential backoff.

    A job that raises one of `retry_on` is run again (a fresh call of its
    function, in the same context) until it has run `attempts` times; only
    the last failure counts as the job's failure and goes to the pool's
    ``on_error``.  Before attempt ``n + 1`` the job waits
    ``min(backoff * 2 ** (n - 1), max_backoff)`` seconds, less a random part
    of up to `jitter` of that (``jitter=0.5``: between half and all of it), so
    that jobs failing together do not retry together.

    The job keeps its worker while it waits, so retries never exceed
    ``max_workers``.  ``job_timeout`` applies to each attempt on its own.
    Cancelling the job (or the pool) during the wait cancels it: no further
    attempt runs.  Cancellation and `BaseException` are never retried.

    Raises:
        TypeError, ValueError: an argument has the wrong type or is out of range.
    """

    attempts: int = attrs.field(default=3, validator=_positive_int)
    """How many times the job runs at most, the first run included."""
    backoff: float = attrs.field(default=0.1, validator=_seconds)
    """Seconds before the second attempt; doubled for each attempt after it."""
    max_backoff: float = attrs.field(default=10.0, validator=_seconds)
    """The longest wait between two attempts, in seconds."""
    jitter: float = attrs.field(default=0.1, validator=_fraction)
    """The largest share of each wait that is randomly taken off (0 to 1)."""
    retry_on: tuple[type[Exception], ...] = attrs.field(
        default=(Exception,), converter=_as_tuple, validator=_exception_types
    )
    """The exceptions worth another attempt (with their subclasses)."""

    def delay(self, attempt: int, rand: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (1 for the first run).

        `rand` (0 to 1) replaces the random draw, for tests.
        """
        # Past 2**62 the product would overflow a float's range long before it
        # mattered: the cap has been reached by then for any sane backoff.
        doublings = attempt - 1
        base = self.max_backoff if doublings > 62 else min(self.backoff * 2.0**doublings, self.max_backoff)
        draw = random.random() if rand is None else rand
        return float(base * (1 - self.jitter * draw))

    def retries(self, exc: Exception, attempt: int) -> bool:
        """Whether a job whose attempt number `attempt` raised `exc` runs again."""
        return attempt < self.attempts and isinstance(exc, self.retry_on)
