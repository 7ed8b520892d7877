"""The opt-in task tracker: where every task was created, and since when it has been blocked.

workpool's own workers carry that information always (`WorkerInfo`, `Job`);
for other tasks the event loop keeps none, so `track_tasks` records it:

* on asyncio, a task factory wraps each new task's coroutine in a thin
  object that stamps the loop's clock whenever the task suspends;
* on trio, an instrument does the same from ``task_spawned`` and
  ``after_task_step``.

Either costs a few hundred nanoseconds per task step while installed.
Once uninstalled, the tasks created meanwhile keep their stamps up to date
until they end (on trio, the instrument stays until then), and no other task
pays; the pool's own hot path never pays for it.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import weakref
from collections.abc import Callable, Coroutine, Generator
from types import CodeType
from typing import Any

from ._frames import caller_site

__all__ = ["TaskInfo", "acquire", "loop_key", "release", "track_tasks", "tracked_info", "untrack_tasks"]

_numbers = itertools.count(1)


class TaskInfo:
    """What the tracker knows about one task."""

    __slots__ = ("blocked_since", "created_at", "number", "site")

    def __init__(self, site: tuple[CodeType, int] | None, now: float) -> None:
        self.number = next(_numbers)
        self.site = site
        self.created_at = now
        # Until its first step a task waits to start: blocked since creation.
        self.blocked_since: float | None = now


class _Tracked(Coroutine[Any, Any, Any]):
    """An asyncio task's coroutine, stamped with the loop clock each time it suspends.

    Everything else (``cr_frame``, ``cr_await``, ``cr_running``...) passes
    through to the real coroutine, which anyio and asyncio inspect.
    """

    __slots__ = ("_wp_clock", "_wp_info", "_wp_inner")

    def __init__(self, inner: Coroutine[Any, Any, Any], info: TaskInfo, clock: Callable[[], float]) -> None:
        self._wp_inner = inner
        self._wp_info = info
        self._wp_clock = clock

    def send(self, value: Any) -> Any:
        __tracebackhide__ = True  # pytest leaves this frame out of tracebacks
        try:
            return self._wp_inner.send(value)
        finally:
            self._wp_info.blocked_since = self._wp_clock()

    def throw(self, *args: Any) -> Any:
        __tracebackhide__ = True
        try:
            return self._wp_inner.throw(*args)
        finally:
            self._wp_info.blocked_since = self._wp_clock()

    def close(self) -> None:
        self._wp_inner.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._wp_inner.__await__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wp_inner, name)

    def __repr__(self) -> str:
        return repr(self._wp_inner)


class _Tracker:
    """One event loop's tracker; installed while wanted explicitly or by a leak check."""

    def __init__(self) -> None:
        self.explicit = False
        self.regions = 0
        self.installed = False

    def install(self) -> None:
        raise NotImplementedError

    def uninstall(self) -> None:
        raise NotImplementedError

    def info(self, task: object) -> TaskInfo | None:
        raise NotImplementedError

    def update(self) -> None:
        wanted = self.explicit or self.regions > 0
        if wanted and not self.installed:
            self.install()
            self.installed = True
        elif not wanted and self.installed:
            self.uninstall()
            self.installed = False


class _AsyncioTracker(_Tracker):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        # Weakly, and the factory below takes the loop it is called with:
        # _trackers maps the loop to this tracker, and a strong reference
        # back would keep every loop ever tracked alive.
        self.loop_ref = weakref.ref(loop)
        self.previous: Any = None
        self.factory: Any = None

    def install(self) -> None:
        loop = self.loop_ref()
        assert loop is not None  # installed from inside it
        previous = self.previous = loop.get_task_factory()
        tracker = self

        def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            if tracker.installed and not isinstance(coro, _Tracked):
                # Frames: this factory, loop.create_task, then whoever asked.
                info = TaskInfo(caller_site(sys._getframe(1)), loop.time())
                coro = _Tracked(coro, info, loop.time)
            if previous is not None:
                return previous(loop, coro, **kwargs)
            return asyncio.Task(coro, loop=loop, **kwargs)

        self.factory = factory
        loop.set_task_factory(factory)

    def uninstall(self) -> None:
        # Another factory installed on top of ours keeps calling ours, which
        # then passes tasks through untouched (`installed` is False).
        loop = self.loop_ref()
        if loop is not None and loop.get_task_factory() is self.factory:
            loop.set_task_factory(self.previous)
        self.factory = self.previous = None

    def info(self, task: object) -> TaskInfo | None:
        get_coro = getattr(task, "get_coro", None)
        coro = get_coro() if get_coro is not None else None
        found: TaskInfo | None = getattr(coro, "_wp_info", None) if isinstance(coro, _Tracked) else None
        return found


class _TrioTracker(_Tracker):
    def __init__(self) -> None:
        super().__init__()
        self.infos: weakref.WeakKeyDictionary[object, TaskInfo] = weakref.WeakKeyDictionary()
        self.instrument: Any = None

    def install(self) -> None:
        import trio

        if self.instrument is not None:  # still stamping the tasks of an earlier tracking
            self.instrument.recording = True
            return
        clock = trio.lowlevel.current_clock()
        infos = self.infos
        tracker = self

        class Instrument(trio.abc.Instrument):
            recording = True

            def task_spawned(self, task: trio.lowlevel.Task) -> None:
                if self.recording:
                    # Frames: this hook, trio's instrument dispatch and spawn
                    # machinery, then start_soon's caller.
                    infos[task] = TaskInfo(caller_site(sys._getframe(1)), clock.current_time())

            def after_task_step(self, task: trio.lowlevel.Task) -> None:
                info = infos.get(task)
                if info is not None:
                    info.blocked_since = clock.current_time()

            def task_exited(self, task: trio.lowlevel.Task) -> None:
                infos.pop(task, None)
                if not self.recording and not infos:
                    # The last task tracked earlier has ended (trio calls
                    # hooks on a copy of its list: removing is safe here).
                    tracker.remove_instrument()

        self.instrument = Instrument()
        trio.lowlevel.add_instrument(self.instrument)

    def uninstall(self) -> None:
        if self.infos:
            # Tasks created while tracking keep their records, and their
            # blocked_for stays true, as on asyncio (whose tasks carry their
            # stamps): the instrument stays until the last of them ends.
            self.instrument.recording = False
            return
        self.remove_instrument()

    def remove_instrument(self) -> None:
        import trio

        try:
            trio.lowlevel.remove_instrument(self.instrument)
        except KeyError:
            pass  # trio dropped it already: one of its hooks raised
        self.instrument = None

    def info(self, task: object) -> TaskInfo | None:
        try:
            return self.infos.get(task)
        except TypeError:  # pragma: no cover - not a trio task
            return None


# asyncio loop or trio root task -> its tracker.
_trackers: weakref.WeakKeyDictionary[object, _Tracker] = weakref.WeakKeyDictionary()


def loop_key() -> tuple[str, object]:
    """("asyncio", the running loop) or ("trio", the run's root task).

    Raises:
        RuntimeError: no asyncio loop or trio run in this thread.
    """
    try:
        return "asyncio", asyncio.get_running_loop()
    except RuntimeError:
        pass
    trio: Any = sys.modules.get("trio")
    if trio is not None:
        try:
            return "trio", trio.lowlevel.current_root_task()
        except RuntimeError:
            pass
    raise RuntimeError("no asyncio event loop or trio run is running in this thread")


def _tracker(create: bool) -> _Tracker | None:
    kind, key = loop_key()
    tracker = _trackers.get(key)
    if tracker is None and create:
        tracker = _AsyncioTracker(key) if kind == "asyncio" else _TrioTracker()  # type: ignore[arg-type]
        _trackers[key] = tracker
    return tracker


def tracked_info(key: object, task: object) -> TaskInfo | None:
    """What the tracker of the loop (or trio run) `key` recorded about `task`, if anything."""
    tracker = _trackers.get(key)
    return tracker.info(task) if tracker is not None else None


def acquire() -> None:
    """Keep the tracker of the running loop installed until the matching `release`."""
    tracker = _tracker(create=True)
    assert tracker is not None
    tracker.regions += 1
    tracker.update()


def release() -> None:
    tracker = _tracker(create=False)
    if tracker is not None and tracker.regions > 0:
        tracker.regions -= 1
        tracker.update()


def track_tasks() -> None:
    """Record where each new task of the running event loop is created, and since when it is blocked.

    Installs a task factory on asyncio, a `trio.abc.Instrument` on trio, for
    the running loop (or trio run) only; tasks created from now on show their
    creation site (``created by ... at file:line``) and how long they have been
    blocked in `dump_tasks`.  workpool's own workers and jobs carry this
    information without it.  Calling it again does nothing; `untrack_tasks`
    removes it, and it ends with the loop.

    Cost: a few hundred nanoseconds per task step and a stack walk per task
    created, while installed.  A task factory installed earlier is kept and
    called with the tracked coroutine.  Never blocks.

    Raises:
        RuntimeError: no asyncio event loop or trio run is running in this thread.
    """
    tracker = _tracker(create=True)
    assert tracker is not None
    tracker.explicit = True
    tracker.update()


def untrack_tasks() -> None:
    """Stop what `track_tasks` started for the running event loop.  Never blocks.

    Tasks created while tracking keep their records.  A `workpool.testing.no_leaks`
    region still running keeps tracking until it ends.  Calling it without
    `track_tasks` does nothing.

    Raises:
        RuntimeError: no asyncio event loop or trio run is running in this thread.
    """
    tracker = _tracker(create=False)
    if tracker is not None:
        tracker.explicit = False
        tracker.update()
