"""Handler registration: one pygls server per connection, closures over the daemon.

Each handler module exposes ``register(ls, daemon)`` and registers its handlers through the
protocol's contract (:mod:`..register`: ``@rooted`` checks the params and opens the root they
name, ``@method`` takes the params as sent); handlers stay thin (read the params, call the
index, shape the reply).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pygls.lsp.server import LanguageServer

from ... import __version__

if TYPE_CHECKING:
    from ...hub import Hub


def make_server(daemon: Hub) -> LanguageServer:
    from ..connection import _CONVERTER, ConnProtocol
    from . import artifacts, commit, daemon_info, logs, lsp_features, reproduce, runs

    ls = LanguageServer(
        "octostored", __version__, protocol_cls=ConnProtocol,
        converter_factory=lambda: _CONVERTER,
    )
    ls.protocol.daemon = daemon  # type: ignore[attr-defined]
    ls.report_server_error = lambda error, source: None  # type: ignore[method-assign]
    for module in (daemon_info, runs, artifacts, logs, lsp_features, commit, reproduce):
        module.register(ls, daemon)
    from ..deadline import bound_features

    bound_features(ls)  # no octostore/* request waits for ever, whatever a repo holds
    return ls
