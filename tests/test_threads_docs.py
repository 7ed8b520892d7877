"""The examples of docs/threads.md run and check themselves, so the page cannot drift from the code."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import pytest

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "docs" / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_web_app_example_runs_twice_in_one_process(capsys: pytest.CaptureFixture[str]) -> None:
    example = load("threads_web_app")
    example.main()
    example.main()  # each App opens its own pool
    assert capsys.readouterr().out.count("50 emails sent, 0 requests shed") == 2


@pytest.mark.anyio
async def test_the_async_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    await load("threads_async").main()
    assert "8 checksums" in capsys.readouterr().out
