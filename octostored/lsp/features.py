"""Code lenses, hovers and inlay hints for a file's MLflow calls, from the runs it produced.

Pure functions of (the file's calls, the runs attributed to the file, the
clock); :mod:`octostored.rpc.handlers.lsp_features` feeds them from the index.
Nothing is shown for a call whose keys no run of the file logged, and nothing
at all for a file without runs: unrelated files stay quiet.

Lens commands are ``octostore.showRun`` with ``{"root", "run_id"}``: the
VS Code extension opens its run view; other editors may bind the command or
ignore it.
"""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter, defaultdict
from typing import Any

from lsprotocol import types as lsp

from ..metricnames import lower_is_better
from ..model import Run
from .calls import Call, FileCalls, Key, Span

SHOW_RUN = "octostore.showRun"
MAX_KEYS_IN_LENS = 4
RECENT_IN_HOVER = 8
SPARK = "▁▂▃▄▅▆▇█"


# -- formatting -------------------------------------------------------------------------------
def fmt(value: float | None) -> str:
    """A metric or param value, short: 4 significant digits, NaN and infinities spelled out."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    a = abs(value)
    if a >= 1e5 or a < 1e-3:
        return f"{value:.3e}"
    return f"{value:.4g}"


def run_label(run: Run) -> str:
    return run.run_name or run.run_id[:8]


def ago(ms: int | None, now: float | None = None) -> str:
    if not ms:
        return "?"
    secs = max(0.0, (now if now is not None else time.time()) - ms / 1000)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{int(secs // size)} {unit} ago"
    return "just now"


def sparkline(values: list[float]) -> str:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(vals) < 2:
        return ""
    lo, hi = min(vals), max(vals)
    if hi == lo:
        return SPARK[3] * len(vals)
    return "".join(SPARK[min(7, int((v - lo) / (hi - lo) * 7.999))] for v in vals)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _range(span: Span) -> lsp.Range:
    return lsp.Range(lsp.Position(span.line, span.col), lsp.Position(span.end_line, span.end_col))


def _finite(v: float) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _command(title: str, root: str, run: Run) -> lsp.Command:
    return lsp.Command(title=title, command=SHOW_RUN,
                       arguments=[{"root": root, "run_id": run.run_id}])


# -- what the runs say about a key ------------------------------------------------------------
def metric_keys_of(call: Call, runs: list[Run], limit: int | None = None) -> list[str]:
    """The concrete metric keys ``call`` stands for, as logged by ``runs``."""
    logged = Counter(k for r in runs for k in r.metrics)
    if call.keys:
        out: list[str] = []
        for key in call.keys:
            if key.name is not None:
                if key.name in logged and key.name not in out:
                    out.append(key.name)
            else:
                out.extend(sorted(k for k in logged if key.matches(k) and k not in out))
    else:
        out = [k for k, _ in sorted(logged.items(), key=lambda kv: (-kv[1], kv[0]))]
    return out[:limit] if limit else out


def latest_run(runs: list[Run], key: str) -> Run | None:
    """The newest run (by start time) that logged ``key`` (``runs`` is newest first)."""
    for r in runs:
        if key in r.metrics:
            return r
    return None


def best_run(runs: list[Run], key: str) -> tuple[Run, float] | None:
    low = lower_is_better(key)
    scored = [(r.metrics[key][0], r) for r in runs if key in r.metrics and _finite(r.metrics[key][0])]
    if not scored:
        return None
    v, r = (min if low else max)(scored, key=lambda t: t[0])
    return r, v


def _latest_suffix(run: Run) -> str:
    return f"{run_label(run)}, running" if run.status == "RUNNING" else run_label(run)


# -- code lenses --------------------------------------------------------------------------------
def code_lenses(root: str, fc: FileCalls, runs: list[Run]) -> list[lsp.CodeLens]:
    if not runs:
        return []
    out: list[lsp.CodeLens] = []
    for call in fc.calls:
        if call.kind == "metric":
            out.extend(_metric_lenses(root, call, runs))
        elif call.kind == "autolog":
            out.extend(_autolog_lenses(root, call, runs))
    return out


def _metric_lenses(root: str, call: Call, runs: list[Run]) -> list[lsp.CodeLens]:
    keys = metric_keys_of(call, runs)
    if not keys:
        return []
    rng = _range(call.span)
    n = sum(1 for r in runs if any(k in r.metrics for k in keys))
    if len(keys) == 1:
        key = keys[0]
        latest = latest_run(runs, key)
        best = best_run(runs, key)
        lenses = []
        if latest is not None:
            v = latest.metrics[key][0]
            lenses.append(lsp.CodeLens(rng, _command(
                f"{key} {fmt(v)} · latest ({_latest_suffix(latest)})", root, latest)))
        if best is not None:
            r, v = best
            lenses.append(lsp.CodeLens(rng, _command(
                f"best {fmt(v)} ({run_label(r)}) of {n} run{'s' if n != 1 else ''}", root, r)))
        return lenses
    shown = keys[:MAX_KEYS_IN_LENS]
    more = f" · +{len(keys) - len(shown)} more" if len(keys) > len(shown) else ""
    newest = next((r for r in runs if any(k in r.metrics for k in shown)), None)
    lenses = []
    if newest is not None:
        vals = " · ".join(f"{k} {fmt(newest.metrics[k][0])}" for k in shown if k in newest.metrics)
        lenses.append(lsp.CodeLens(rng, _command(
            f"latest ({_latest_suffix(newest)}): {vals}{more}", root, newest)))
    found = [(k, b) for k, b in ((k, best_run(runs, k)) for k in shown) if b is not None]
    if found:
        first = found[0][1][0]
        head = f"best of {n} run{'s' if n != 1 else ''}: "
        if len({b[0].run_id for _, b in found}) == 1:  # one run is best on every key
            title = head + f"{run_label(first)} (" + " · ".join(
                f"{k} {fmt(b[1])}" for k, b in found) + ")"
        else:
            title = head + " · ".join(f"{k} {fmt(b[1])} ({run_label(b[0])})" for k, b in found)
        lenses.append(lsp.CodeLens(rng, _command(title, root, first)))
    return lenses


def _autolog_lenses(root: str, call: Call, runs: list[Run]) -> list[lsp.CodeLens]:
    keys = metric_keys_of(call, runs, limit=3)
    rng = _range(call.span)
    newest = runs[0]
    vals = " · ".join(f"{k} {fmt(newest.metrics[k][0])}" for k in keys if k in newest.metrics)
    title = f"autolog: {len(runs)} run{'s' if len(runs) != 1 else ''} from this file · latest " \
            f"({_latest_suffix(newest)})" + (f": {vals}" if vals else "")
    lenses = [lsp.CodeLens(rng, _command(title, root, newest))]
    if keys:
        b = best_run(runs, keys[0])
        if b is not None:
            lenses.append(lsp.CodeLens(rng, _command(
                f"best {keys[0]} {fmt(b[1])} ({run_label(b[0])})", root, b[0])))
    return lenses


# -- inlay hints --------------------------------------------------------------------------------
def inlay_hints(fc: FileCalls, runs: list[Run], rng: lsp.Range | None = None) -> list[lsp.InlayHint]:
    """After each literal metric key: its value in the newest run that logged it."""
    if not runs:
        return []
    out = []
    for call in fc.metric_calls:
        for key in call.keys:
            if key.name is None:
                continue
            if rng is not None and not (rng.start.line <= key.span.line <= rng.end.line):
                continue
            latest = latest_run(runs, key.name)
            if latest is None:
                continue
            best = best_run(runs, key.name)
            tip = f"{key.name} = {fmt(latest.metrics[key.name][0])} in {run_label(latest)} " \
                  f"(the newest of {len(runs)} runs of this file)"
            if best is not None:
                tip += f"; best {fmt(best[1])} in {run_label(best[0])}"
            out.append(lsp.InlayHint(
                position=lsp.Position(key.span.end_line, key.span.end_col),
                label=f"= {fmt(latest.metrics[key.name][0])}",
                kind=lsp.InlayHintKind.Parameter, padding_left=True, tooltip=tip))
    return out


# -- hovers -------------------------------------------------------------------------------------
def hover_target(fc: FileCalls, line: int, col: int) -> tuple[Call, Key | None] | None:
    """The call (and key) under the cursor: a key literal, or the called name."""
    for call in fc.calls:
        for key in call.keys:
            if key.span.contains(line, col):
                return call, key
    for call in fc.calls:
        if call.name_span.contains(line, col):
            return call, None
    return None


def score_keys(fc: FileCalls, runs: list[Run], key_metric: str | None = None) -> list[str]:
    """The metrics a param's hover scores runs by: the configured key metric, then the file's
    final metrics in source order, else the metrics most runs logged."""
    logged = Counter(k for r in runs for k in r.metrics)
    keys = [k for k in fc.metric_keys() if k in logged]
    if not keys:
        keys = [k for k, _ in sorted(logged.items(), key=lambda kv: (-kv[1], kv[0]))]
    if key_metric and key_metric in logged:
        keys = [key_metric] + [k for k in keys if k != key_metric]
    return keys[:3]


def hover(fc: FileCalls, runs: list[Run], line: int, col: int, rel: str,
          key_metric: str | None = None, now: float | None = None) -> lsp.Hover | None:
    if not runs:
        return None
    target = hover_target(fc, line, col)
    if target is None:
        return None
    call, key = target
    if call.kind == "param":
        names = _param_names(call, key, runs)
        md = "\n\n---\n\n".join(_param_md(p, fc, runs, rel, key_metric, now) for p in names[:4])
        span = key.span if key is not None else call.name_span
    elif call.kind == "metric":
        names = [key.name] if key is not None and key.name else metric_keys_of(
            call if key is None else Call(call.kind, call.func, call.span, call.name_span, (key,)),
            runs)
        md = "\n\n---\n\n".join(_metric_md(m, runs, rel, now) for m in names[:4])
        span = key.span if key is not None else call.name_span
    else:
        md = _autolog_md(fc, runs, rel, key_metric, now)
        span = call.name_span
    if not md:
        return None
    return lsp.Hover(lsp.MarkupContent(lsp.MarkupKind.Markdown, md), _range(span))


def _param_names(call: Call, key: Key | None, runs: list[Run]) -> list[str]:
    used = Counter(p for r in runs for p in r.params)
    keys = (key,) if key is not None else call.keys
    if not keys:
        return [p for p, _ in sorted(used.items(), key=lambda kv: (-kv[1], kv[0]))]
    out: list[str] = []
    for k in keys:
        if k.name is not None:
            if k.name in used:
                out.append(k.name)
        else:
            out.extend(sorted(p for p in used if k.matches(p)))
    return out


def _param_md(param: str, fc: FileCalls, runs: list[Run], rel: str,
              key_metric: str | None, now: float | None) -> str:
    with_p = [r for r in runs if param in r.params]
    if not with_p:
        return ""
    scores = score_keys(fc, with_p, key_metric)
    lines = [f"**{param}**: {len(with_p)} run{'s' if len(with_p) != 1 else ''} of `{rel}`"]
    if scores:
        main = scores[0]
        low = lower_is_better(main)
        groups: dict[str, list[Run]] = defaultdict(list)
        for r in with_p:
            groups[r.params[param]].append(r)

        def group_best(rs: list[Run]) -> float | None:
            vals = [r.metrics[main][0] for r in rs if main in r.metrics and _finite(r.metrics[main][0])]
            return (min if low else max)(vals) if vals else None

        ordered = sorted(groups.items(), key=lambda kv: (
            group_best(kv[1]) is None, (group_best(kv[1]) or 0) * (1 if low else -1)))
        lines += ["", f"| {param} | runs | best {main} | mean {main} |", "|---|---:|---:|---:|"]
        for value, rs in ordered[:10]:
            vals = [r.metrics[main][0] for r in rs if main in r.metrics and _finite(r.metrics[main][0])]
            mean = statistics.fmean(vals) if vals else None
            lines.append(f"| `{_md_cell(value)}` | {len(rs)} | {fmt(group_best(rs))} | {fmt(mean)} |")
        if len(ordered) > 10:
            lines.append(f"| … {len(ordered) - 10} more values | | | |")
        lines.append("")
        lines.append(f"{'Lower' if low else 'Higher'} {main} is better.")
    recent = with_p[:RECENT_IN_HOVER]
    lines += ["", "Recent runs:", "",
              "| run | " + param + " | " + " | ".join(scores) + " | started |",
              "|---|---|" + "---:|" * len(scores) + "---|"]
    for r in recent:
        vals = " | ".join(fmt(r.metrics[s][0]) if s in r.metrics else "–" for s in scores)
        lines.append(f"| {_md_cell(run_label(r))} | `{_md_cell(r.params[param])}` | {vals} | "
                     f"{ago(r.start_time, now)} |")
    return "\n".join(lines)


def _metric_md(key: str, runs: list[Run], rel: str, now: float | None) -> str:
    with_k = [r for r in runs if key in r.metrics]
    if not with_k:
        return ""
    low = lower_is_better(key)
    latest = with_k[0]
    best = best_run(with_k, key)
    lines = [f"**{key}**: {len(with_k)} run{'s' if len(with_k) != 1 else ''} of `{rel}` · "
             f"{'lower' if low else 'higher'} is better", ""]
    lines.append(f"latest **{fmt(latest.metrics[key][0])}** ({_latest_suffix(latest)}, "
                 f"{ago(latest.start_time, now)})")
    if best is not None:
        lines.append(f"· best **{fmt(best[1])}** ({run_label(best[0])})")
    spark = sparkline([r.metrics[key][0] for r in reversed(with_k[:30])])
    if spark:
        lines += ["", f"`{spark}` oldest → newest"]
    lines += ["", f"| run | {key} | step | started |", "|---|---:|---:|---|"]
    for r in with_k[:RECENT_IN_HOVER]:
        v, _ts, step = r.metrics[key]
        lines.append(f"| {_md_cell(run_label(r))} | {fmt(v)} | {step} | {ago(r.start_time, now)} |")
    return "\n".join(lines)


def _autolog_md(fc: FileCalls, runs: list[Run], rel: str, key_metric: str | None,
                now: float | None) -> str:
    scores = score_keys(fc, runs, key_metric)
    lines = [f"**autolog**: {len(runs)} run{'s' if len(runs) != 1 else ''} of `{rel}`", "",
             "| run | " + " | ".join(scores) + " | started |",
             "|---|" + "---:|" * len(scores) + "---|"]
    for r in runs[:RECENT_IN_HOVER]:
        vals = " | ".join(fmt(r.metrics[s][0]) if s in r.metrics else "–" for s in scores)
        lines.append(f"| {_md_cell(run_label(r))} | {vals} | {ago(r.start_time, now)} |")
    return "\n".join(lines)


def summary(fc: FileCalls, runs: list[Run]) -> dict[str, Any]:
    """What the file has, for tests and debugging."""
    return {"calls": len(fc.calls), "runs": len(runs),
            "metric_keys": fc.metric_keys(), "error": fc.error}
