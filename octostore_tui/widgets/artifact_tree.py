"""ArtifactTree: a run's console logs, its logged models, then its artifacts as a folder tree.

Choosing an artifact posts ``FileChosen``; choosing a console log (this run's,
or a related run's: the original of a reproduction) posts ``LogChosen``.  A
log's entry shows its size and, while its writer writes, a live marker; those
labels are refreshed in place as the log grows.
"""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.message import Message
from textual.widgets import Tree

from .. import format as fmt

LogEntry = tuple[str, str, dict[str, Any]]
"""(run_id, label of the run ("" for this one), the log as ``octostore/run`` lists it)."""


def model_label(model: dict[str, Any]) -> str:
    """``◆ model  sklearn · signature · 1.2 MB`` (MLflow 3 keeps models as their own entities:
    their files are not among the run's artifacts)."""
    flavors = model.get("flavors") or []
    names = [f for f in (flavors if isinstance(flavors, list) else list(flavors))
             if f != "python_function"] or list(flavors)
    parts = [", ".join(fmt.shown(f) for f in names) or "no flavor"]
    parts.append("signature" if model.get("signature") else "no signature")
    parts.append(fmt.human_bytes(model.get("size")) if model.get("local") else "not on this machine")
    return f"◆ {fmt.marked(model.get('name') or model.get('model_id') or 'model')}  " \
        f"[dim]{escape(' · '.join(parts))}[/dim]"


def log_label(label: str, log: dict[str, Any], accent: str = "cyan") -> str:
    """``▶ console  12.5 KB``; a live log's icon is an accent ``●`` (a narrow tree cuts the
    end of a label, so the marker leads)."""
    name = log.get("name") or "console"
    icon = f"[{accent}]●[/]" if log.get("live") else "▶"
    who = f"[i]{fmt.marked(label)}[/i] " if label else ""
    size = f"  [dim]{fmt.human_bytes(log.get('size'))}[/dim]"
    return f"{icon} {who}{'console' if name == 'console' else fmt.marked(name)}{size}"


class ArtifactTree(Tree[dict[str, Any]]):
    DEFAULT_CSS = """
    ArtifactTree { width: 1fr; height: 1fr; }
    """

    class FileChosen(Message):
        def __init__(self, path: str, size: int) -> None:
            super().__init__()
            self.path = path
            self.size = size

    class LogChosen(Message):
        def __init__(self, run_id: str, label: str, log: dict[str, Any]) -> None:
            super().__init__()
            self.run_id = run_id
            self.label = label
            self.log = log

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("artifacts", id=id, classes=classes)
        self.show_root = False
        self.guide_depth = 2
        self.paths: list[str] = []
        self.logs: list[tuple[str, str]] = []
        """(run_id, name) of each log entry, in order."""
        self.model_ids: list[Any] = []

    def set_entries(
        self, entries: list[dict[str, Any]], logs: list[LogEntry] | None = None,
        models: list[dict[str, Any]] | None = None,
    ) -> None:
        """Show the logs, the logged models, then the artifacts ``[{path, size}]``; relabels
        in place when the same ones are listed again (a live log grew)."""
        logs = logs or []
        models = models or []
        paths = [e["path"] for e in entries]
        keys = [(rid, lg.get("name") or "console") for rid, _, lg in logs]
        model_ids = [m.get("model_id") for m in models]
        if paths == self.paths and keys == self.logs and model_ids == self.model_ids:
            for node in self.root.children:
                data = node.data or {}
                if "log" in data:
                    rid, label, lg = logs[data["index"]]
                    node.data = {**data, "log": lg}
                    node.set_label(log_label(label, lg, self._accent))
            return
        self.paths, self.logs, self.model_ids = paths, keys, model_ids
        self.clear()
        for i, (rid, label, lg) in enumerate(logs):
            self.root.add_leaf(
                log_label(label, lg, self._accent),
                data={"log": lg, "run_id": rid, "label": label, "index": i},
            )
        for m in models:
            self.root.add_leaf(model_label(m), data={"model": m})
        folders: dict[str, Any] = {"": self.root}
        for e in sorted(entries, key=lambda e: (e["path"].count("/") == 0, e["path"])):
            parts = e["path"].split("/")
            parent = self.root
            for depth in range(1, len(parts)):
                key = "/".join(parts[:depth])
                if key not in folders:
                    folders[key] = parent.add(
                        f"📁 {fmt.marked(parts[depth - 1])}", expand=True, data={"folder": key}
                    )
                parent = folders[key]
            parent.add_leaf(
                f"{fmt.marked(parts[-1])}  [dim]{fmt.human_bytes(e.get('size'))}[/dim]",
                data={"path": e["path"], "size": e.get("size", 0)},
            )
        self.root.expand()

    @property
    def _accent(self) -> str:
        # Tree labels are Rich markup, which knows no theme variables.
        return self.app.theme_variables.get("accent", "cyan")

    def on_tree_node_selected(self, event: Tree.NodeSelected[dict[str, Any]]) -> None:
        data = event.node.data or {}
        if "log" in data:
            event.stop()
            self.post_message(self.LogChosen(data["run_id"], data["label"], data["log"]))
        elif "path" in data:
            event.stop()
            self.post_message(self.FileChosen(data["path"], data.get("size", 0)))

    def first_file(self) -> str | None:
        return self.paths[0] if self.paths else None
