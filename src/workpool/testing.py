"""Testing helpers: prove that code leaves no task or thread behind.

```python
from workpool.testing import no_leaks

async def test_service_stops_its_workers():
    async with no_leaks():
        await run_service_once()
```

Installing workpool also installs a pytest plugin: a ``no_leaks`` fixture,
a ``@pytest.mark.no_leaks(...)`` marker and a ``--leaks`` option that checks
every test (see the "Finding and preventing leaks" guide).
"""

from __future__ import annotations

from ._leaks import FunctionSpec as FunctionSpec
from ._leaks import LeakCheck as LeakCheck
from ._leaks import LeakError as LeakError
from ._leaks import no_leaks as no_leaks

__all__ = ("FunctionSpec", "LeakCheck", "LeakError", "no_leaks")
