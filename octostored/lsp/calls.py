"""Find the MLflow logging calls of a Python file with the stdlib ``ast`` (mlflow is never imported).

What counts as an MLflow call is decided by the file's own imports, so a
``log_metric`` of another library never gets a lens:

* ``import mlflow`` / ``import mlflow as mf`` / ``import mlflow.sklearn``:
  ``mlflow.log_metric(...)``, ``mf.log_metrics(...)``, ``mlflow.sklearn.autolog()``;
* ``from mlflow import log_metric, log_params as lp, sklearn``;
* ``client = MlflowClient()`` (or ``mlflow.MlflowClient()``, ``mlflow.tracking.MlflowClient()``):
  ``client.log_metric(run_id, "rmse", v)`` and ``client.log_param(run_id, "alpha", a)``.

Keys are read from string literals: the first argument of ``log_metric`` and
``log_param``, the keys of a dict literal passed to ``log_metrics`` and
``log_params`` (inline, ``dict(a=..)``, or the literal last assigned to the
variable that is passed, plus ``name["k"] = ...`` assignments in between).
An f-string key becomes a pattern (``f"val_{name}"`` matches ``val_rmse``);
any other expression makes the call *dynamic* (every key the runs logged).

Positions are LSP positions: 0-based lines, UTF-16 columns.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

METRIC_ONE = "log_metric"
METRIC_MANY = "log_metrics"
PARAM_ONE = "log_param"
PARAM_MANY = "log_params"
AUTOLOG = "autolog"
FLUENT = {METRIC_ONE, METRIC_MANY, PARAM_ONE, PARAM_MANY, AUTOLOG}
CLIENT_METHODS = {METRIC_ONE: 1, PARAM_ONE: 1}
"""MlflowClient methods with a key argument, and that argument's position (after run_id)."""


@dataclass(frozen=True, slots=True)
class Span:
    line: int
    col: int
    end_line: int
    end_col: int

    def contains(self, line: int, col: int) -> bool:
        if line < self.line or line > self.end_line:
            return False
        if line == self.line and col < self.col:
            return False
        return not (line == self.end_line and col > self.end_col)


@dataclass(frozen=True, slots=True)
class Key:
    name: str | None
    """The key, or None for a pattern (f-string) key."""
    span: Span
    pattern: str | None = None
    """A regex for f-string keys (matched in full against the runs' keys)."""

    def matches(self, key: str) -> bool:
        if self.name is not None:
            return key == self.name
        return self.pattern is not None and re.fullmatch(self.pattern, key) is not None


@dataclass(frozen=True, slots=True)
class Call:
    kind: str
    """"metric", "param" or "autolog"."""
    func: str
    """The MLflow name: ``log_metric``, ``log_metrics``, ``log_param``, ``log_params``,
    ``autolog`` or ``<flavor>.autolog``."""
    span: Span
    """The whole call expression."""
    name_span: Span
    """The called name (``log_metric`` in ``mlflow.log_metric``)."""
    keys: tuple[Key, ...] = ()
    dynamic: bool = False
    """True when the keys cannot be read from the source (every key of the runs applies)."""
    stepped: bool = False
    """``log_metric(..., step=...)``: a curve rather than a final value."""


@dataclass(slots=True)
class FileCalls:
    calls: list[Call] = field(default_factory=list)
    error: str | None = None
    """The syntax error, when the source does not parse."""

    @property
    def metric_calls(self) -> list[Call]:
        return [c for c in self.calls if c.kind == "metric"]

    def metric_keys(self) -> list[str]:
        """Static metric keys in a useful order: final values before curves, then source order."""
        seen: dict[str, tuple[int, int]] = {}
        for i, c in enumerate(self.metric_calls):
            for k in c.keys:
                if k.name is not None and k.name not in seen:
                    seen[k.name] = (1 if c.stepped else 0, i)
        return sorted(seen, key=lambda k: seen[k])


class _Lines:
    """Byte-offset (ast) to UTF-16 column (LSP) conversion."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines()

    def col(self, lineno: int, byte_col: int | None) -> int:
        if byte_col is None:
            return 0
        if lineno - 1 >= len(self.lines) or lineno < 1:
            return byte_col
        text = self.lines[lineno - 1]
        if text.isascii():
            return byte_col
        prefix = text.encode("utf-8")[:byte_col].decode("utf-8", "replace")
        return len(prefix.encode("utf-16-le")) // 2

    def span(self, node: ast.AST) -> Span:
        line = node.lineno  # type: ignore[attr-defined]
        end_line = getattr(node, "end_lineno", None) or line
        return Span(line - 1, self.col(line, node.col_offset),  # type: ignore[attr-defined]
                    end_line - 1, self.col(end_line, getattr(node, "end_col_offset", None)))


class _Imports(ast.NodeVisitor):
    """Names that stand for mlflow, its flavor modules, its functions and MlflowClient."""

    def __init__(self) -> None:
        self.modules: dict[str, str] = {}
        """Local name -> dotted mlflow module (``mlflow``, ``mlflow.sklearn``)."""
        self.functions: dict[str, str] = {}
        """Local name -> mlflow function (``log_metric``, ``sklearn.autolog``)."""
        self.client_classes: set[str] = set()

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name == "mlflow" or a.name.startswith("mlflow."):
                if a.asname:
                    self.modules[a.asname] = a.name
                else:
                    self.modules["mlflow"] = "mlflow"

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        mod = node.module or ""
        if node.level or not (mod == "mlflow" or mod.startswith("mlflow.")):
            return
        sub = mod[len("mlflow."):] if mod != "mlflow" else ""
        for a in node.names:
            local = a.asname or a.name
            if a.name == "MlflowClient":
                self.client_classes.add(local)
            elif a.name in FLUENT:
                self.functions[local] = f"{sub}.{a.name}" if sub else a.name
            elif not sub and a.name.isidentifier() and a.name[0].islower():
                self.modules[local] = f"mlflow.{a.name}"  # from mlflow import sklearn


def _dotted(node: ast.AST) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _key_from(node: ast.AST, lines: _Lines) -> Key | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return Key(node.value, lines.span(node))
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(re.escape(v.value))
            else:
                parts.append(".+")
        return Key(None, lines.span(node), pattern="".join(parts))
    return None


def _dict_keys(node: ast.AST, lines: _Lines) -> list[Key] | None:
    """Keys of a dict literal or ``dict(a=...)``; None when the keys are not all literal."""
    if isinstance(node, ast.Dict):
        keys = []
        for k in node.keys:
            if k is None:  # **other
                return None
            key = _key_from(k, lines)
            if key is None:
                return None
            keys.append(key)
        return keys
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        if node.args or any(kw.arg is None for kw in node.keywords):
            return None
        out = []
        for kw in node.keywords:
            # A keyword has no position of its own before 3.9's end positions; use its value's line.
            ln = getattr(kw, "lineno", kw.value.lineno)
            col = lines.col(ln, getattr(kw, "col_offset", kw.value.col_offset))
            out.append(Key(kw.arg, Span(ln - 1, col, ln - 1, col + len(kw.arg or ""))))
        return out
    return None


class _Finder(ast.NodeVisitor):
    def __init__(self, imports: _Imports, lines: _Lines, tree: ast.Module) -> None:
        self.imports = imports
        self.lines = lines
        self.calls: list[Call] = []
        self.clients: set[str] = set()
        self.scopes: list[list[ast.stmt]] = [tree.body]

    # -- scopes, for resolving ``log_metrics(metrics)`` to the dict assigned to ``metrics`` ----
    def _scoped(self, node: ast.AST) -> None:
        self.scopes.append(node.body)  # type: ignore[attr-defined]
        self.generic_visit(node)
        self.scopes.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped  # type: ignore[assignment]

    def visit_Assign(self, node: ast.Assign) -> None:
        if isinstance(node.value, ast.Call) and self._is_client_class(node.value.func):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    self.clients.add(t.id)
                elif isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name):
                    self.clients.add(f"{t.value.id}.{t.attr}")
        self.generic_visit(node)

    def _is_client_class(self, func: ast.AST) -> bool:
        parts = _dotted(func)
        if not parts:
            return False
        if len(parts) == 1:
            return parts[0] in self.imports.client_classes
        return parts[-1] == "MlflowClient" and parts[0] in self.imports.modules

    def _resolve_name(self, name: str, before: int) -> list[Key] | None:
        """The keys of the dict last assigned to ``name`` before line ``before`` in this scope."""
        found: list[Key] | None = None
        extra: list[Key] = []

        def walk(stmts: list[ast.stmt]) -> None:
            nonlocal found, extra
            for st in stmts:
                if st.lineno >= before:
                    return
                if isinstance(st, ast.Assign):
                    for t in st.targets:
                        if isinstance(t, ast.Name) and t.id == name:
                            keys = _dict_keys(st.value, self.lines)
                            found, extra = keys, []
                        elif (isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name)
                              and t.value.id == name):
                            k = _key_from(t.slice, self.lines)
                            if k is not None:
                                extra.append(k)
                elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) \
                        and st.target.id == name and st.value is not None:
                    found, extra = _dict_keys(st.value, self.lines), []
                elif isinstance(st, (ast.With, ast.AsyncWith, ast.If, ast.For, ast.AsyncFor,
                                     ast.While, ast.Try)):
                    # Blocks of the same scope (a ``with mlflow.start_run():`` body).
                    for block in ("body", "orelse", "finalbody"):
                        sub = getattr(st, block, None)
                        if sub:
                            walk(sub)
                    for h in getattr(st, "handlers", []) or []:
                        walk(h.body)

        walk(self.scopes[-1])
        if found is None:
            return extra or None
        return found + extra

    # -- calls ---------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        func = self._mlflow_function(node.func)
        if func is not None:
            self._fluent(node, func)
            return
        parts = _dotted(node.func)
        if parts and len(parts) >= 2 and parts[-1] in CLIENT_METHODS:
            receiver = ".".join(parts[:-1])
            if receiver in self.clients:
                self._client(node, parts[-1])

    def _mlflow_function(self, func: ast.AST) -> str | None:
        parts = _dotted(func)
        if not parts:
            return None
        if len(parts) == 1:
            return self.imports.functions.get(parts[0])
        head = self.imports.modules.get(parts[0])
        if head is None:
            return None
        full = head.split(".") + parts[1:]  # mlflow, sklearn, autolog
        if full[0] != "mlflow":
            return None
        rest = full[1:]
        if len(rest) == 1 and rest[0] in FLUENT:
            return rest[0]
        if len(rest) == 2 and rest[1] == AUTOLOG:
            return f"{rest[0]}.autolog"
        return None

    def _name_span(self, node: ast.Call) -> Span:
        f = node.func
        if isinstance(f, ast.Attribute):
            end = self.lines.span(f)
            start_col = end.end_col - len(f.attr)
            return Span(end.end_line, start_col, end.end_line, end.end_col)
        return self.lines.span(f)

    def _arg(self, node: ast.Call, pos: int, *names: str) -> ast.AST | None:
        if len(node.args) > pos and not isinstance(node.args[pos], ast.Starred):
            return node.args[pos]
        for kw in node.keywords:
            if kw.arg in names:
                return kw.value
        return None

    def _fluent(self, node: ast.Call, func: str) -> None:
        span, name_span = self.lines.span(node), self._name_span(node)
        base = func.rsplit(".", 1)[-1]
        if base == AUTOLOG:
            self.calls.append(Call("autolog", func, span, name_span, dynamic=True))
            return
        kind = "metric" if base in (METRIC_ONE, METRIC_MANY) else "param"
        stepped = any(kw.arg == "step" for kw in node.keywords) or len(node.args) >= 3
        if base in (METRIC_ONE, PARAM_ONE):
            arg = self._arg(node, 0, "key")
            key = _key_from(arg, self.lines) if arg is not None else None
            keys = (key,) if key is not None else ()
            self.calls.append(Call(kind, base, span, name_span, keys, dynamic=key is None,
                                   stepped=stepped and kind == "metric"))
            return
        arg = self._arg(node, 0, "metrics" if kind == "metric" else "params")
        keys_list: list[Key] | None = None
        if arg is not None:
            keys_list = _dict_keys(arg, self.lines)
            if keys_list is None and isinstance(arg, ast.Name):
                keys_list = self._resolve_name(arg.id, node.lineno)
        self.calls.append(Call(kind, base, span, name_span, tuple(keys_list or ()),
                               dynamic=keys_list is None,
                               stepped=any(kw.arg == "step" for kw in node.keywords)
                               or len(node.args) >= 2))

    def _client(self, node: ast.Call, method: str) -> None:
        pos = CLIENT_METHODS[method]
        arg = self._arg(node, pos, "key")
        key = _key_from(arg, self.lines) if arg is not None else None
        kind = "metric" if method == METRIC_ONE else "param"
        stepped = any(kw.arg == "step" for kw in node.keywords) or len(node.args) >= 5
        self.calls.append(Call(kind, method, self.lines.span(node), self._name_span(node),
                               (key,) if key else (), dynamic=key is None,
                               stepped=stepped and kind == "metric"))


def find_calls(source: str) -> FileCalls:
    """Every MLflow logging call of ``source``, in source order."""
    if "mlflow" not in source:
        return FileCalls()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError) as exc:
        return FileCalls(error=str(exc))
    imports = _Imports()
    imports.visit(tree)
    if not imports.modules and not imports.functions and not imports.client_classes:
        return FileCalls()
    finder = _Finder(imports, _Lines(source), tree)
    finder.visit(tree)
    calls = sorted(finder.calls, key=lambda c: (c.span.line, c.span.col))
    return FileCalls(calls)
