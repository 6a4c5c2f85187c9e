"""The daemon, client and CLI start without heavy libraries (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("mlflow", "pandas", "numpy", "sqlalchemy", "git", "textual")


@pytest.mark.parametrize("modules", [
    "octostored.daemon, octostored.rpc.server, octostored.rpc.handlers, octostored.index.root, "
    "octostored.watch, octostored.watchproc, octostored.query, octostored.sources.sqlitestore, "
    "octostored.envfiles",
    "octostored.client, octostored.cli",
])
def test_no_heavy_imports(modules: str) -> None:
    code = (f"import {modules}\nimport sys\n"
            f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
