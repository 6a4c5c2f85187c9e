"""LSP features on the same socket: code lenses, hovers and inlay hints on MLflow calls.

A document gets features only when it is a Python file inside one of the
client's workspace folders (or inside a root the daemon already has open)
and the root's index attributes runs to it (``octostored.lsp.attribution``).
The logic lives in ``octostored.lsp``; this module resolves roots, caches
parses per document version, and asks the client to refresh its lenses and
hints when the runs of a file it shows change (``workspace/codeLens/refresh``,
``workspace/inlayHint/refresh``, when the client supports them).

``initializationOptions`` may carry ``{"keyMetric": "rmse"}``: the metric a
param's hover scores runs by first.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lsprotocol import types as lsp
from pygls.uris import to_fs_path

from ...lsp import features
from ...lsp.attribution import attribution
from ...lsp.attribution import forget as forget_attribution
from ...lsp.calls import FileCalls, find_calls
from ...lsp.parseproc import CHILD_MIN, parse_in_child
from ...safefile import SOURCE_CAP, Refused, read_text, too_big
from ..deadline import within
from ..errors import DeadlineExceeded, OctostoreError

if TYPE_CHECKING:
    from pygls.lsp.server import LanguageServer

    from ...index.root import Root
    from ...hub import Hub

log = logging.getLogger(__name__)

SOURCE_WHAT = "a Python file the language server parses"

_PARSE_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="lsp-parse")
"""Reading a file from disk and parsing a small one run here: off the event loop (other
clients keep being answered) and off the pool every handler shares (they cannot starve it).
A big source is parsed in a child process (:mod:`octostored.lsp.parseproc`)."""


def read_source(path: str) -> str:
    """A Python file from disk for a document the editor did not open (refused: not a
    regular file, over :data:`~octostored.safefile.SOURCE_CAP`)."""
    return read_text(path, SOURCE_CAP, SOURCE_WHAT, label=os.path.basename(path))


FEATURE_DEADLINE = 30.0
"""Seconds a code lens, hover or inlay hint request may take before it answers empty."""
REFRESH_MIN_INTERVAL = 1.0
"""At most one refresh request per this many seconds (a training run logs continuously)."""


@dataclass
class _Conn:
    parses: dict[str, tuple[int, FileCalls]] = field(default_factory=dict)
    served: dict[str, tuple[str, str, tuple[int, int]]] = field(default_factory=dict)
    """uri -> (root path, file path, signature of the runs shown) for refreshes."""
    key_metric: str | None = None
    listening: bool = False
    """Listening to the hub's changes (from the first file served with runs)."""
    check: asyncio.TimerHandle | None = None
    """A look at the shown files' runs, scheduled by a change (at most one pending)."""
    last_sent: float = 0.0
    ticks: dict[str, int] = field(default_factory=dict)
    parsing: dict[tuple[str, int], asyncio.Future[FileCalls]] = field(default_factory=dict)
    """Parses under way, by (uri, hash of the text)."""
    refused: set[str] = field(default_factory=set)
    """Files already reported as refused (not a regular file, over the cap)."""


def _is_python(uri: str, language_id: str | None = None) -> bool:
    if language_id:
        return language_id == "python"
    return uri.endswith((".py", ".pyw"))


def _inside(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _signature(runs: list[Any]) -> tuple[int, int]:
    return (len(runs), max((r.clock for r in runs), default=0))


def register(ls: LanguageServer, daemon: Hub) -> None:
    conn = _Conn()

    def folders() -> list[str]:
        out = []
        ws = ls.protocol._workspace  # None before initialize
        if ws is None:
            return out
        for f in ws.folders.values():
            p = to_fs_path(f.uri)
            if p:
                out.append(os.path.realpath(p))
        if not out and ws.root_path:
            out.append(os.path.realpath(ws.root_path))
        return sorted(out, key=len, reverse=True)

    async def root_for(path: str) -> Root | None:
        real = os.path.realpath(path)
        for folder in folders():
            if _inside(folder, real) and os.path.isdir(folder):
                try:
                    root = await daemon.root(folder)
                except OctostoreError:
                    return None
                return root if _inside(root.path, real) else None
        for root in daemon.roots.values():  # a file outside the folders, in a root already open
            if _inside(root.path, real):
                await root.ready.wait()
                return root
        return None

    async def parsed(uri: str) -> FileCalls | None:
        doc = ls.workspace.get_text_document(uri)
        if doc._source is None:  # not opened by the editor: pygls would read the disk here
            if not doc.path:
                return None
            try:  # never blocks (a FIFO) and never reads past the cap, off the event loop
                source = await asyncio.get_running_loop().run_in_executor(
                    _PARSE_POOL, read_source, doc.path)
            except Refused as exc:  # a FIFO, a device, too big: say why it gets nothing
                refused(uri, exc)
                return None
            except OSError:  # gone or unreadable, as when pygls read it
                return None
        else:
            source = doc._source
            if len(source) > SOURCE_CAP:  # characters: at least as many bytes
                refused(uri, too_big(os.path.basename(doc.path or uri),
                                     len(source.encode("utf-8", "replace")), SOURCE_CAP,
                                     SOURCE_WHAT))
                return None
        h = hash(source)
        hit = conn.parses.get(uri)
        if hit is not None and hit[0] == h:
            return hit[1]
        key = (uri, h)
        pending = conn.parsing.get(key)
        if pending is None:  # one parse per version, however many requests ask for it
            if len(source) >= CHILD_MIN:  # seconds of C code holding the GIL: another process
                pending = asyncio.ensure_future(parse_in_child(source))
            else:
                pending = asyncio.get_running_loop().run_in_executor(
                    _PARSE_POOL, find_calls, source)
            conn.parsing[key] = pending
            pending.add_done_callback(lambda _f: conn.parsing.pop(key, None))
        try:
            fc = await asyncio.shield(pending)
        except (TimeoutError, OSError) as exc:
            refused(uri, OSError(f"{os.path.basename(doc.path or uri)} could not be parsed in"
                                 f" time ({type(exc).__name__}); octostore skipped it"))
            return None
        if fc.error is not None and hit is not None:
            return hit[1]  # mid-edit syntax error: keep the last good parse
        conn.parses[uri] = (h, fc)
        return fc

    def refused(uri: str, exc: OSError) -> None:
        """Say once per file and connection why it gets no lenses (a FIFO, too big)."""
        if uri in conn.refused:
            return
        conn.refused.add(uri)
        log.info("no lenses for %s: %s", uri, exc)
        try:
            ls.protocol.notify(lsp.WINDOW_LOG_MESSAGE, lsp.LogMessageParams(
                lsp.MessageType.Warning, f"octostore: {exc}"))
        except Exception:  # the connection went away
            log.debug("logMessage failed", exc_info=True)

    async def context(uri: str, language_id: str | None = None):
        if not _is_python(uri, language_id):
            return None
        path = to_fs_path(uri)
        if not path:
            return None
        fc = await parsed(uri)
        if fc is None or not fc.calls:
            return None
        root = await root_for(path)
        if root is None:
            return None
        runs = attribution(root).runs_for(root, path)
        conn.served[uri] = (root.path, path, _signature(runs))
        ensure_listening()
        if not runs:
            return None
        rel = os.path.relpath(os.path.realpath(path), root.path)
        return root, fc, runs, rel

    async def bounded_context(uri: str):
        """:func:`context` within :data:`FEATURE_DEADLINE`: an editor's request never waits
        on a root or a parse for longer; it gets no lenses this time and asks again."""
        try:
            return await within(context(uri, language_of(uri)), FEATURE_DEADLINE,
                                "the language features of " + uri)
        except DeadlineExceeded as exc:
            log.warning("%s", exc)
            return None

    def language_of(uri: str) -> str | None:
        doc = ls.protocol._workspace and ls.workspace.text_documents.get(uri)
        return getattr(doc, "language_id", None) if doc else None

    # -- lifecycle -----------------------------------------------------------------------------
    @ls.feature(lsp.INITIALIZE)
    def initialize(ls: LanguageServer, params: lsp.InitializeParams) -> None:
        opts = params.initialization_options
        if isinstance(opts, dict) and isinstance(opts.get("keyMetric"), str):
            conn.key_metric = opts["keyMetric"] or None

    @ls.feature(lsp.INITIALIZED)
    async def initialized(ls: LanguageServer, params: lsp.InitializedParams) -> None:
        for folder in folders():  # start indexing the folders' roots before the first lens
            if os.path.isdir(folder):
                asyncio.ensure_future(_quiet(daemon.root(folder)))

    @ls.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LanguageServer, params: lsp.DidCloseTextDocumentParams) -> None:
        conn.parses.pop(params.text_document.uri, None)
        conn.served.pop(params.text_document.uri, None)
        conn.refused.discard(params.text_document.uri)

    @ls.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: LanguageServer, params: lsp.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if isinstance(settings, dict):
            octo = settings.get("octostore", settings)
            if isinstance(octo, dict) and isinstance(octo.get("keyMetric"), str):
                conn.key_metric = octo["keyMetric"] or None

    # -- features ------------------------------------------------------------------------------
    @ls.feature(lsp.TEXT_DOCUMENT_CODE_LENS, lsp.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls: LanguageServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        uri = params.text_document.uri
        ctx = await bounded_context(uri)
        if ctx is None:
            return []
        root, fc, runs, _rel = ctx
        return features.code_lenses(root.path, fc, runs)

    @ls.feature(lsp.TEXT_DOCUMENT_HOVER)
    async def hover(ls: LanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
        uri = params.text_document.uri
        ctx = await bounded_context(uri)
        if ctx is None:
            return None
        _root, fc, runs, rel = ctx
        return features.hover(fc, runs, params.position.line, params.position.character, rel,
                              conn.key_metric)

    @ls.feature(lsp.TEXT_DOCUMENT_INLAY_HINT, lsp.InlayHintOptions(resolve_provider=False))
    async def inlay_hint(ls: LanguageServer, params: lsp.InlayHintParams) -> list[lsp.InlayHint]:
        uri = params.text_document.uri
        ctx = await bounded_context(uri)
        if ctx is None:
            return []
        _root, fc, runs, _rel = ctx
        return features.inlay_hints(fc, runs, params.range)

    # -- refresh when the runs of a shown file change ----------------------------------------
    def ensure_listening() -> None:
        if not conn.listening and (supports("code_lens") or supports("inlay_hint")):
            conn.listening = True
            daemon.listen(on_change, owner=ls)  # dropped by the hub when the connection goes

    def supports(kind: str) -> bool:
        ws = getattr(ls.client_capabilities, "workspace", None)
        cap = getattr(ws, kind, None) if ws is not None else None
        return bool(getattr(cap, "refresh_support", False))

    def on_change(root: Root, _changes: Any) -> None:
        """A root changed: if it holds a shown file, look at its runs (at most once per
        :data:`REFRESH_MIN_INTERVAL`; a training run logs continuously)."""
        if conn.check is not None or ls.protocol._shutdown:
            return
        if not any(rp == root.path for rp, _p, _s in conn.served.values()):
            return
        loop = asyncio.get_running_loop()
        at = max(loop.time(), conn.last_sent + REFRESH_MIN_INTERVAL)
        conn.check = loop.call_at(at, look)

    def look() -> None:
        conn.check = None
        changed = False
        for uri, (root_path, path, sig) in list(conn.served.items()):
            root = daemon.roots.get(root_path)
            if root is None:
                continue
            tick = root.index.tick
            if conn.ticks.get(uri) == tick:
                continue
            conn.ticks[uri] = tick
            new = _signature(attribution(root).runs_for(root, path))
            if new != sig:
                conn.served[uri] = (root_path, path, new)
                changed = True
        if not changed or ls not in daemon.connections:
            return
        conn.last_sent = asyncio.get_running_loop().time()
        try:
            if supports("code_lens"):
                ls.protocol.send_request(lsp.WORKSPACE_CODE_LENS_REFRESH, None)
            if supports("inlay_hint"):
                ls.protocol.send_request(lsp.WORKSPACE_INLAY_HINT_REFRESH, None)
        except Exception:  # the connection went away
            log.debug("refresh request failed", exc_info=True)

    daemon.on_root_closed(forget_attribution)  # a set: once however many connections


async def _quiet(aw: Any) -> None:
    try:
        await aw
    except Exception:
        log.debug("opening a workspace folder's root failed", exc_info=True)
