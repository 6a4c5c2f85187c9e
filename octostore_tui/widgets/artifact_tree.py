"""ArtifactTree: a run's artifacts as a folder tree; choosing a file posts ``FileChosen``."""

from __future__ import annotations

from typing import Any

from textual.message import Message
from textual.widgets import Tree

from .. import format as fmt


class ArtifactTree(Tree[dict[str, Any]]):
    DEFAULT_CSS = """
    ArtifactTree { width: 1fr; height: 1fr; }
    """

    class FileChosen(Message):
        def __init__(self, path: str, size: int) -> None:
            super().__init__()
            self.path = path
            self.size = size

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("artifacts", id=id, classes=classes)
        self.show_root = False
        self.guide_depth = 2
        self.paths: list[str] = []

    def set_entries(self, entries: list[dict[str, Any]]) -> None:
        """Show ``[{path, size}]``; keeps the tree as is when nothing changed."""
        paths = [e["path"] for e in entries]
        if paths == self.paths:
            return
        self.paths = paths
        self.clear()
        folders: dict[str, Any] = {"": self.root}
        for e in sorted(entries, key=lambda e: (e["path"].count("/") == 0, e["path"])):
            parts = e["path"].split("/")
            parent = self.root
            for depth in range(1, len(parts)):
                key = "/".join(parts[:depth])
                if key not in folders:
                    folders[key] = parent.add(
                        f"📁 {parts[depth - 1]}", expand=True, data={"folder": key}
                    )
                parent = folders[key]
            parent.add_leaf(
                f"{parts[-1]}  [dim]{fmt.human_bytes(e.get('size'))}[/dim]",
                data={"path": e["path"], "size": e.get("size", 0)},
            )
        self.root.expand()

    def on_tree_node_selected(self, event: Tree.NodeSelected[dict[str, Any]]) -> None:
        data = event.node.data or {}
        if "path" in data:
            event.stop()
            self.post_message(self.FileChosen(data["path"], data.get("size", 0)))

    def first_file(self) -> str | None:
        return self.paths[0] if self.paths else None
