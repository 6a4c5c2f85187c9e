"""docs/protocol.md documents every method and error code the daemon has."""

from __future__ import annotations

import re

from octostored.rpc import protocol

from .conftest import REPO

DOC = (REPO / "docs" / "protocol.md").read_text()


def test_every_method_has_a_section_with_an_example() -> None:
    for method in protocol.METHODS:
        section = DOC.split(f"### `{method}`", 1)
        assert len(section) == 2, f"{method} is not documented"
        body = section[1].split("\n### ", 1)[0]
        assert '"method": "' + method + '"' in body and "Reply:" in body, f"{method} has no example"


def test_every_error_code_is_listed() -> None:
    codes = {v for k, v in vars(protocol).items() if k.isupper() and isinstance(v, int)
             and k != "PROTOCOL_VERSION"}
    listed = {int(c) for c in re.findall(r"^\| (-?\d+) \|", DOC, re.M)}
    assert codes <= listed
