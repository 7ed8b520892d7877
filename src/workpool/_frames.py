"""Reading stacks: the frames of a suspended task or another thread, and what they are blocked on.

A suspended coroutine keeps no ``f_back`` chain, so a task's stack is read
the other way round: from the task's outermost coroutine down through what
each one awaits (``cr_await``, ``gi_yieldfrom``, async generators), to the
object at the bottom (an asyncio future, a trio trap).  A thread's stack is
read from `sys._current_frames`, innermost first.

"Library" code is the standard library, the event loops (asyncio, anyio,
trio) and workpool itself: what a task is *blocked on* is the outermost call
of the innermost run of library frames, the call that the task's own code
made (``MemoryObjectReceiveStream.receive``, ``anyio.sleep``).
"""

from __future__ import annotations

import functools
import gc
import os
import site
import sys
import sysconfig
import types
from types import CodeType, FrameType
from typing import Any

from ._context import resume_in_context
from ._worker import work_loop_code

__all__ = [
    "Frame",
    "blocked_on",
    "caller_site",
    "coroutine_frames",
    "is_library",
    "qualname",
    "running_frames",
    "thread_frames",
]

#: (code, line number, module name or None): one entry of a stack, outermost first.
Frame = tuple[CodeType, int, "str | None"]

# Packages whose frames are the event loop's or workpool's, not the program's.
_LIBRARY_PACKAGES = ("anyio", "trio", "sniffio", "outcome", "exceptiongroup", "workpool", "_pytest", "pluggy")

# Deep enough for any sane await chain; guards against a cycle of awaitables.
_MAX_DEPTH = 256

_STEPPING_CODES: tuple[CodeType, ...] = (resume_in_context.__code__, work_loop_code())
_library_cache: dict[str, bool] = {}


def _dirs(paths: object) -> tuple[str, ...]:
    found: Any = paths
    return tuple({os.path.realpath(p) + os.sep for p in found if p})


def _library_dirs() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(the standard library's dirs, library packages' dirs, site-packages dirs)."""
    stdlib = _dirs([sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")])
    packages: list[str] = []
    for name in _LIBRARY_PACKAGES:
        file = getattr(sys.modules.get(name), "__file__", None)
        if file:
            packages.append(os.path.dirname(file))
    site_dirs = [sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()]
    return stdlib, _dirs(packages), _dirs(site_dirs)


def is_library(filename: str) -> bool:
    """Whether code from `filename` belongs to Python, the event loop or workpool."""
    known = _library_cache.get(filename)
    if known is not None:
        return known
    if filename.startswith("<"):
        # <frozen importlib._bootstrap> and friends are Python's; <string>
        # and <stdin> are the program's.
        result = filename.startswith("<frozen ")
    else:
        path = os.path.realpath(filename)
        stdlib, packages, site_dirs = _library_dirs()
        # A library package inside site-packages (anyio) is library; the rest
        # of site-packages is not, though it may sit inside the stdlib dir.
        result = path.startswith(packages) or (path.startswith(stdlib) and not path.startswith(site_dirs))
    _library_cache[filename] = result
    return result


def qualname(code: CodeType) -> str:
    """The function's qualified name (``Class.method``)."""
    name: str | None = getattr(code, "co_qualname", None)
    return name if name is not None else _qualname_before_311(code)


@functools.lru_cache(maxsize=1024)
def _qualname_before_311(code: CodeType) -> str:
    # Code objects carry their qualified name only from Python 3.11 on;
    # before, ask the function that holds the code.  A heap search, so only
    # for dumps (never on a pool's hot path), and cached per code object.
    for referrer in gc.get_referrers(code):
        if isinstance(referrer, types.FunctionType) and referrer.__code__ is code:
            return referrer.__qualname__
    return code.co_name


def _frame_of(obj: Any) -> tuple[FrameType | None, Any, bool]:
    """(frame, what it awaits, whether obj is a coroutine-like object at all)."""
    if hasattr(obj, "cr_frame"):
        return obj.cr_frame, obj.cr_await, True
    if hasattr(obj, "gi_frame"):
        return obj.gi_frame, obj.gi_yieldfrom, True
    if hasattr(obj, "ag_frame"):
        return obj.ag_frame, obj.ag_await, True
    return None, None, False


def coroutine_frames(coro: object) -> tuple[list[Frame], object]:
    """The frames of a coroutine and everything it awaits, outermost first, and the awaited leaf.

    The leaf is what the innermost coroutine awaits that is not a coroutine
    itself (an asyncio future's iterator, a trio trap), or None.
    """
    frames: list[Frame] = []
    obj: Any = coro
    for _ in range(_MAX_DEPTH):
        if obj is None:
            break
        inner = getattr(obj, "_wp_inner", None)  # the tracker's wrapper (_tracker.py)
        if inner is not None:
            obj = inner
            continue
        kind = type(obj).__name__
        if kind in ("async_generator_asend", "async_generator_athrow"):
            # These hide their generator, but the garbage collector sees it.
            obj = next((r for r in gc.get_referents(obj) if hasattr(r, "ag_frame")), None)
            continue
        frame, awaited, coroutine_like = _frame_of(obj)
        if not coroutine_like:
            return frames, obj
        if frame is None:  # finished, or not started yet
            break
        frames.append((frame.f_code, frame.f_lineno, frame.f_globals.get("__name__")))
        if awaited is None and frame.f_code in _STEPPING_CODES:
            # A pool worker steps its job runner by hand (_worker.py,
            # _context.py), so the runner is a local of the stepping frame,
            # not what it awaits.
            runner = frame.f_locals.get("runner")
            awaited = getattr(runner, "steps", None)
        obj = awaited
    return frames, None


def thread_frames(frame: FrameType | None) -> list[Frame]:
    """A thread's frames from its innermost `frame` outwards, returned outermost first."""
    frames: list[Frame] = []
    while frame is not None and len(frames) < _MAX_DEPTH:
        frames.append((frame.f_code, frame.f_lineno, frame.f_globals.get("__name__")))
        frame = frame.f_back
    frames.reverse()
    return frames


def _label(code: CodeType, module: str | None) -> str:
    name = qualname(code)
    if "." in name or not module:
        return name  # a method (Class.method) names itself well enough
    return f"{module.partition('.')[0]}.{name}"  # anyio.sleep, not a bare sleep


# Protocol methods that only forward to the real operation (``async for``
# calls ``__anext__``, which calls ``receive``): the label names the operation.
_FORWARDERS = ("__anext__", "__aiter__", "__await__", "__aenter__", "__aexit__")
# trio's lowest-level primitives, below anything that tells what a task waits for.
_TRAPS = "trio._core._traps"


def blocked_on(frames: list[Frame], leaf: object) -> str:
    """What a stack (outermost first) waits for: the library call its own code made.

    That is the outermost frame of the innermost run of library frames (a
    protocol method such as ``__anext__`` gives way to the call it forwards
    to); with no library frame at the bottom, the awaited leaf's type, else
    the innermost function.  ``""`` for an empty stack.
    """
    start = len(frames)
    while start > 0 and is_library(frames[start - 1][0].co_filename):
        start -= 1
    if start == 0 and frames:
        # Nothing but library code (an idle worker, the event loop's own
        # tasks): the innermost frame that is more than a trap says most.
        index = len(frames) - 1
        while index > 0 and frames[index][2] == _TRAPS:
            index -= 1
        code, _, module = frames[index]
        return _label(code, module)
    if start < len(frames):
        while start + 1 < len(frames) and frames[start][0].co_name in _FORWARDERS:
            start += 1
        code, _, module = frames[start]
        return _label(code, module)
    if leaf is not None:
        return type(leaf).__qualname__
    if frames:
        code, _, module = frames[-1]
        return _label(code, module)
    return ""


def running_frames(coro: object) -> list[Frame]:
    """The frames of the running task whose outermost coroutine is `coro`, outermost first.

    A running coroutine does not point at what it awaits (it awaits
    nothing yet), so the stack is read from the caller's frames instead, up
    to the coroutine's own frame.
    """
    outermost = getattr(getattr(coro, "_wp_inner", coro), "cr_frame", None)
    frames: list[Frame] = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and len(frames) < _MAX_DEPTH:
        frames.append((frame.f_code, frame.f_lineno, frame.f_globals.get("__name__")))
        if frame is outermost:
            frames.reverse()
            return frames
        frame = frame.f_back
    return coroutine_frames(coro)[0]  # pragma: no cover - not the running task after all


def caller_site(frame: FrameType | None) -> tuple[CodeType, int] | None:
    """The first frame from `frame` outwards that is the program's own code, as (code, line)."""
    depth = 0
    while frame is not None and depth < 64:
        code = frame.f_code
        if not is_library(code.co_filename):
            return code, frame.f_lineno
        frame = frame.f_back
        depth += 1
    return None
