"""LSP features on the same socket: code lenses on ``mlflow.log_metric`` calls.

Placeholder registration point for the editor issue; the daemon answers
``initialize`` with the capabilities pygls derives from what is registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ..server import Daemon


def register(ls: LanguageServer, daemon: Daemon) -> None:
    return None
