"""docs/security.md names a test for each defence: every one it names must exist."""

from __future__ import annotations

import re

from .conftest import REPO


def test_every_defence_names_a_test_that_exists() -> None:
    text = (REPO / "docs" / "security.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", text)
    assert len(named) >= 30
    current = None
    missing = []
    for path, name in named:
        current = path or current
        assert current, f"{name} is named before any test file"
        if not re.search(rf"^(async )?def {name}\(", (REPO / current).read_text(), re.M):
            missing.append(f"{current}::{name}")
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
