"""The public API is exactly what __all__ says, and all of it is documented.

Like anyio's tests/test_all_attributes.py and httpx's test_exported_members.py:
a name added to or dropped from the package without updating this list fails.
"""

from __future__ import annotations
import __future__

import ast
import inspect
import pathlib
import re
import weakref

import pytest

import workpool

EXPECTED_ALL = (
    "AckingSource",
    "ErrorPolicy",
    "Job",
    "JobCancelled",
    "MapIterator",
    "PeriodicCall",
    "PeriodicJob",
    "Pool",
    "PoolClosed",
    "PoolFull",
    "PoolStats",
    "Retry",
    "ShutdownReport",
    "StackFrame",
    "TaskRecord",
    "TaskSummary",
    "ThreadPool",
    "WorkpoolError",
    "check_cancelled",
    "dump_on_signal",
    "dump_tasks",
    "format_tasks",
    "run_in_thread",
    "shutdown_on_signals",
    "summarize_tasks",
    "ticker",
    "track_tasks",
    "untrack_tasks",
    "watch_tasks",
)

PACKAGE_DIR = pathlib.Path(workpool.__file__).parent


def test_all_is_the_expected_tuple() -> None:
    assert isinstance(workpool.__all__, tuple)
    assert workpool.__all__ == EXPECTED_ALL


def test_issue_2_names_are_public() -> None:
    for name in ("Pool", "Job", "PoolStats", "PoolClosed", "PoolFull", "JobCancelled"):
        assert name in workpool.__all__


def test_every_public_attribute_is_in_all() -> None:
    public = {
        name
        for name, value in vars(workpool).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and not isinstance(value, __future__._Feature)
    }
    assert public == set(workpool.__all__)


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_name_is_importable(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from workpool import {name}", namespace)
    assert namespace[name] is getattr(workpool, name)


def _module_docstrings() -> dict[str, str | None]:
    """Docstrings of the package's top-level definitions, as the API docs see them.

    mkdocstrings (griffe) reads a class's or function's docstring, and for an
    assignment (a type alias) the string literal right below it.
    """
    found: dict[str, str | None] = {}
    for path in sorted(PACKAGE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        body = tree.body
        for index, node in enumerate(body):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(node.name, ast.get_docstring(node))
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                following = body[index + 1] if index + 1 < len(body) else None
                doc = None
                if (
                    isinstance(following, ast.Expr)
                    and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)
                ):
                    doc = following.value.value
                for target in targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(target.id, doc)
    return found


@pytest.mark.parametrize("name", EXPECTED_ALL)
def test_every_public_name_is_documented(name: str) -> None:
    obj = getattr(workpool, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        # A class's own docstring, not one inherited; a function's __doc__
        # (not in its __dict__).
        own_doc = (vars(obj).get("__doc__") if inspect.isclass(obj) else obj.__doc__) or ""
        assert own_doc.strip(), f"{name} has no docstring of its own"
    else:
        doc = _module_docstrings().get(name)
        assert (doc or "").strip(), f"{name} has no docstring that the API reference can show"


def _public_members(cls: type) -> list[str]:
    return [name for name in vars(cls) if not name.startswith("_")]


@pytest.mark.parametrize("cls", [workpool.Pool, workpool.Job, workpool.MapIterator, workpool.PoolStats])
def test_every_public_method_and_property_is_documented(cls: type) -> None:
    undocumented = []
    for name in _public_members(cls):
        member = inspect.getattr_static(cls, name)
        target = member.fget if isinstance(member, property) else member
        documentable = callable(target) or isinstance(member, property)
        if documentable and not (getattr(target, "__doc__", None) or "").strip():
            undocumented.append(name)
    assert undocumented == []


def test_async_methods_of_the_pool() -> None:
    # Blocking operations are async (cancellation points); the rest are sync.
    pool = workpool.Pool
    assert inspect.iscoroutinefunction(pool.submit)
    assert inspect.iscoroutinefunction(pool.consume)
    assert inspect.iscoroutinefunction(pool.close)
    assert not inspect.iscoroutinefunction(pool.submit_nowait)
    assert not inspect.iscoroutinefunction(pool.cancel)
    assert not inspect.iscoroutinefunction(pool.map)


def test_exception_hierarchy() -> None:
    for exc in (workpool.PoolClosed, workpool.PoolFull, workpool.JobCancelled):
        assert issubclass(exc, workpool.WorkpoolError)
    assert issubclass(workpool.WorkpoolError, Exception)


def test_version_is_a_string() -> None:
    assert isinstance(workpool.__version__, str)


def test_the_readme_shows_pool_stats_as_they_print() -> None:
    # The README's stats example is a repr: it must still be one, field for field.
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    (shown,) = re.findall(r"^# (PoolStats\(.*\))$", readme, re.MULTILINE)
    fields = {name: int(value) for name, value in re.findall(r"(\w+)=(\d+)", shown)}
    assert repr(workpool.PoolStats(**fields)) == shown


def test_pool_and_job_keep_their_state_in_slots() -> None:
    # The per-job paths read and write a dozen attributes of each; slots are
    # what Python specialises best (benchmarks/README.md).  The registry of
    # open pools needs weak references to them.
    pool = workpool.Pool()
    assert not hasattr(pool, "__dict__")
    assert weakref.ref(pool)() is pool
    assert "__dict__" not in dir(workpool.Job)
    with pytest.raises(AttributeError):
        pool.tag = "x"  # type: ignore[attr-defined]
