"""The example of docs/leaks.md runs and checks itself, so the page cannot drift from the code."""

from __future__ import annotations

import importlib.util
import pathlib
from types import ModuleType

import anyio
import pytest

from virtual_clock import virtual_time

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "docs" / "examples" / "leaks_service.py"

pytestmark = pytest.mark.anyio


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_example_leaks_service", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@virtual_time()
async def test_the_leaky_service_is_caught_and_the_fixed_one_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with anyio.fail_after(30 * 24 * 3600):  # virtual time
        await load().main()
    out = capsys.readouterr().out
    assert out.startswith(
        "x3 tasks [awaiting MemoryObjectReceiveStream.receive] created by LeakyPriceService.start_workers at "
    )
    assert "\nx2 tasks [awaiting anyio.sleep] created by LeakyPriceService.handle_subscribe at " in out
    assert "no_leaks(): 5 tasks leaked (still alive 3600 s after the region ended):" in out
    assert out.endswith("the fixed service leaves nothing behind\n")
