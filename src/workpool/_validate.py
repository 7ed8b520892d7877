"""Argument checks that turn a caller's mistake into a clear error at the call site."""

from __future__ import annotations

import functools
import inspect
import math
import types
import weakref
from typing import Any

__all__ = [
    "check_async_callable",
    "check_bool",
    "check_grace",
    "check_interval",
    "check_jitter",
    "check_optional_rate",
    "check_optional_timeout",
    "check_pending",
    "check_positive_int",
    "check_str",
]

# Deciding whether a callable is async costs microseconds, more than running a
# no-op job, so the verdict is cached, keyed by the underlying function (or
# the class of a callable object).  Weakly: a closure made per request carries
# the request's data, and the cache must not keep it alive.
_verdicts: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _type_of(obj: object) -> Any:
    return type(obj)


def _cache_key(fn: Any) -> Any:
    while isinstance(fn, functools.partial):
        fn = fn.func
    if isinstance(fn, types.MethodType):
        return fn.__func__
    if isinstance(fn, (types.FunctionType, types.BuiltinFunctionType, type)):
        return fn
    # A callable object is as async as its __call__.
    return getattr(_type_of(fn), "__call__", None)  # noqa: B004


def _is_sync(key: Any) -> bool:
    """True when calling `key` certainly returns something that is not awaitable."""
    if isinstance(key, type):
        return True  # calling a class makes an instance
    if inspect.iscoroutinefunction(key) or inspect.iscoroutinefunction(inspect.unwrap(key)):
        return False
    # A plain ``def`` might return a coroutine (a lambda wrapping an async
    # call), but the documented way to bind arguments is functools.partial,
    # and running a blocking function here would stall the whole event loop.
    # Anything more exotic is found out when it runs: the job fails with TypeError.
    return isinstance(key, (types.FunctionType, types.BuiltinFunctionType))


def check_async_callable(fn: object, what: str) -> None:
    """Raise TypeError unless `fn` looks like an async callable.

    `what` names the API for the message, e.g. ``"Pool.submit"``.
    """
    # Fast path: a plain function seen before is its own key.
    sync = _verdicts.get(fn) if type(fn) is types.FunctionType else None
    if sync is None:
        key = _cache_key(fn)
        try:
            sync = _verdicts[key]
        except (KeyError, TypeError):
            sync = _classify(fn, key, what)
    if sync:
        short = what.rsplit(".", 1)[-1]
        raise TypeError(
            f"{what}() expected an async function, but {fn!r} is synchronous. "
            f"Pass an 'async def' function and its arguments, as in {short}(fetch, url); "
            "to run blocking code, call anyio.to_thread.run_sync() inside an async function."
        )


def _classify(fn: object, key: Any, what: str) -> bool:
    short = what.rsplit(".", 1)[-1]
    if inspect.isawaitable(fn):
        if inspect.iscoroutine(fn):
            fn.close()  # it can never run now; closing it avoids a second, confusing warning
        raise TypeError(
            f"{what}() expected an async function and its arguments, but got the "
            f"awaitable {fn!r}. Write {short}(fn, *args), not {short}(fn(*args)); "
            "pass keyword arguments with functools.partial."
        )
    if not callable(fn):
        raise TypeError(f"{what}() expected an async function, but got {type(fn).__name__} {fn!r}")
    sync = _is_sync(key)
    try:
        _verdicts[key] = sync
    except TypeError:  # unhashable or no weak references: classified again next time
        pass
    return sync


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_pending(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(
            f"{name} must be >= 0 (0 hands each job straight to a worker) or None (unbounded), got {value!r}"
        )
    return value


def check_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def check_str(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__} {value!r}")
    return value


def _check_number(value: object, name: str, unit: str, *, zero_ok: bool, none_ok: bool) -> float | None:
    """The one check behind every "number of seconds" (or of jobs per second) argument."""
    if value is None and none_ok:
        return None
    alternative = " or None" if none_ok else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a number of {unit}{alternative}, got {type(value).__name__} {value!r}"
        )
    if zero_ok:
        if not (value >= 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number of {unit} >= 0{alternative}, got {value!r}")
    elif not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive, finite number of {unit}{alternative}, got {value!r}")
    return float(value)


def check_optional_timeout(value: object, name: str) -> float | None:
    return _check_number(value, name, "seconds", zero_ok=False, none_ok=True)


def check_optional_rate(value: object, name: str) -> float | None:
    return _check_number(value, name, "jobs per second", zero_ok=False, none_ok=True)


def check_grace(value: object, name: str = "grace") -> float:
    seconds = _check_number(value, name, "seconds", zero_ok=True, none_ok=False)
    assert seconds is not None
    return seconds


def check_interval(value: object, name: str = "interval") -> float:
    seconds = _check_number(value, name, "seconds", zero_ok=False, none_ok=False)
    assert seconds is not None
    return seconds


def check_jitter(value: object) -> float:
    return check_grace(value, "jitter")
