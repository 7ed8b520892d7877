"""Exception groups: taking out the members a pool must not report."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup  # a dependency of anyio there

__all__ = ["without", "without_cancellations"]


def without(exc: BaseException, drop: Callable[[BaseException], bool]) -> BaseException | None:
    """`exc` minus the exceptions (or group members) that `drop` selects; None if nothing is left."""
    whole: BaseException = exc  # before isinstance() narrows it, for pyright strict
    if drop(exc):
        return None
    split: Any = getattr(exc, "split", None)
    if not isinstance(exc, BaseExceptionGroup) or split is None:
        return whole
    rest: BaseException | None = split(drop)[1]
    return rest


def without_cancellations(exc: BaseException, cancelled_exc: type[BaseException]) -> BaseException | None:
    """`exc` minus the event loop's cancellations, or None if that is all it was."""
    return without(exc, lambda e: isinstance(e, cancelled_exc))
