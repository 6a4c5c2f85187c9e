"""LinkedScreen: what every data screen shares (the link, live changes, error reporting).

A screen listens to the daemon link while it is mounted, so it receives
:class:`~octostore_tui.messages.RunsChanged` (coalesced) and the link's
ready/lost messages.  ``palette_commands`` lists the screen's actions for the
command palette; the app adds them to its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual.screen import Screen

from .. import format as fmt
from ..daemon_link import DaemonLink, LinkError

if TYPE_CHECKING:
    from ..app import OctostoreApp


class LinkedScreen(Screen[Any]):
    HELP = ""
    """A few sentences for the help screen."""

    @property
    def link(self) -> DaemonLink:
        return self.octo.link

    @property
    def octo(self) -> OctostoreApp:
        return self.app  # type: ignore[return-value]

    def on_mount(self) -> None:
        self.link.listen(self)

    def on_unmount(self) -> None:
        self.link.unlisten(self)

    def report(self, err: LinkError) -> None:
        """Show a failure as a notification: title and one sentence."""
        self.notify(fmt.shown(err.message), title=fmt.shown(err.title), severity="error",
                    timeout=8, markup=False)

    def palette_commands(self) -> list[tuple[str, str, Callable[[], Any]]]:
        """(title, help, callback) for each of this screen's actions."""
        return []
