"""Hooks that stack and may be removed in any order.

A signal handler, ``threading.excepthook`` or an event loop's exception
handler is one slot: each hook installed there replaces the one before, and
putting that one back on removal is right only if removals come in reverse
order.  Two leak checks that overlap without nesting, or two signal dumps
closed in the order they were made, do not: the one ending first is not on
top, and the other would later put the ended one back.  So a hook records
what it replaced and whether it has ended, and whoever removes one skips
every ended hook below it.
"""

from __future__ import annotations

from typing import Any, TypeVar

__all__ = ["end", "ended", "stack"]

H = TypeVar("H")


def stack(hook: H, previous: object) -> H:
    """Record that `hook` (a function: it takes attributes) was installed over `previous`."""
    hook_: Any = hook
    hook_._workpool_previous = previous
    hook_._workpool_ended = False
    return hook


def ended(hook: object) -> bool:
    """Whether `hook`, stacked, has been removed by its owner."""
    return bool(getattr(hook, "_workpool_ended", False))


def end(hook: object, current: object) -> object | None:
    """Mark `hook` ended; return what to install in place of `current`, or None to leave it.

    `current` is what the slot holds now.  It is replaced by the first hook
    below it that has not ended, if it has ended itself; a hook of someone
    else's on top stays, and the ended ones under it are skipped when it goes.
    """
    hook_: Any = hook
    hook_._workpool_ended = True
    top: Any = current
    while ended(top):
        top = top._workpool_previous
    return None if top is current else top
