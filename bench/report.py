"""The results table (Markdown) from the harness's raw figures.

Cells: ``median (min-max)`` for durations, ``p50 / p99`` for latencies, and
ratios against MLflow.  :data:`ROWS` lists every row; the smoke test checks
that each one got a value.  docs/benchmarks.md says what each row measures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.stats import fmt_lat, fmt_ms, fmt_range, fmt_s, fmt_x

R = dict[str, Any]


def _med(r: R, key: str) -> float | None:
    v = r.get(key)
    return v.get("median") if isinstance(v, dict) else None


def _ratio(r: R, num: str, den: str) -> float | None:
    a, b = _med(r, num), _med(r, den)
    return a / b if a is not None and b else None


def _agree(r: R, key: str) -> str:
    v = r.get(key)
    if not v:
        return "-"
    if v["diffs"] == 0:
        return f"yes, {v['runs']}/{v['runs']} runs"
    return f"NO: {v['diffs']} differences ({v['first_diffs'][0][:80]})"


def _sample(r: R, key: str) -> str:
    v = r.get(key)
    if not v:
        return "-"
    if v["problems"] == 0:
        return f"yes, {v['checked']}/{v['checked']} sampled runs"
    return f"NO: {v['problems']} problems ({v['first_problems'][0][:80]})"


def _range(key: str, unit: str = "s") -> Callable[[R], str]:
    def f(r: R) -> str:
        v = r.get(key)
        if isinstance(v, dict) and "skipped" in v:
            return f"skipped ({v['skipped']})"
        return fmt_range(v, unit)
    return f


def _lat(key: str) -> Callable[[R], str]:
    return lambda r: fmt_lat(r.get(key))


def _x(num: str, den: str) -> Callable[[R], str]:
    return lambda r: fmt_x(_ratio(r, num, den))


def _per_k(key: str, unit: str) -> Callable[[R], str]:
    def f(r: R) -> str:
        m = _med(r, key)
        if m is None:
            return "-"
        per = m / (r["runs"] / 1000)
        return f"{per * 1000:.0f} ms" if unit == "s" else f"{per:.1f} MB"
    return f


def _query_agree(r: R) -> str:
    v = r.get("query_agree")
    if not v:
        return "-"
    ok = v["file_equal"] and v["sqlite_equal"]
    return (f"{'yes' if ok else 'NO'}: {v['mlflow']} runs of {v['total']} "
            f"(file {'=' if v['file_equal'] else '!='}, SQLite {'=' if v['sqlite_equal'] else '!='})")


def _hist_shape(r: R) -> str:
    v = r.get("hist_shape")
    return f"{v['points']} -> {v['returned']} points" if v else "-"


def _upd(key: str) -> Callable[[R], str]:
    def f(r: R) -> str:
        s = fmt_lat(r.get(key))
        missed = (r.get("upd_missed") or {}).get(key.split("_")[1], 0)
        return s + (f", {missed} missed" if missed else "")
    return f


def _conc(r: R) -> str:
    v = r.get("concurrency")
    if not v:
        return "-"
    return (f"{v['throughput']:.0f} req/s, p50 {fmt_ms(v['p50'])}, p99 {fmt_ms(v['p99'])}, "
            f"{v['errors']} errors, {v['writes']} appends")


def _mb(key: str) -> Callable[[R], str]:
    def f(r: R) -> str:
        v = r.get(key)
        if not v or v.get("median") is None:
            return "-"
        if v["n"] == 1:
            return f"{v['median']:.0f} MB"
        return f"{v['median']:.0f} MB ({v['min']:.0f}-{v['max']:.0f})"
    return f


def _tui(r: R) -> str:
    v = r.get("tui")
    if not v:
        return "-"
    if v["status"] != "ok":
        return f"{v['status']} ({v.get('why', '')})"
    return fmt_range(v)


def _setup(r: R) -> str:
    s = r["spec"]
    return (f"{r['runs']} runs ({r['deleted']} deleted), {s['experiments']} experiments, "
            f"8 metrics x {s['steps']} steps")


def _store(r: R) -> str:
    out = f"{r['files']} files, {r['disk_mb']:.0f} MB; generated in {fmt_s(r['generate_s'])}"
    ino = r.get("inotify") or {}
    if ino.get("raised_to"):
        out += (f"; {r['folders']} folders: fs.inotify.max_user_watches raised "
                f"{ino['max_user_watches']} -> {ino['raised_to']}")
    elif ino.get("polling"):
        out += f"; {r['folders']} folders over the inotify limit: the daemon POLLED"
    return out


def _sqlite(r: R) -> str:
    s = r["sqlite"]
    return f"{r['db_mb']:.0f} MB by {s['method']} in {fmt_s(s['wall_s'])}"


ROWS: list[tuple[str, str, Callable[[R], str]]] = [
    ("Data", "stores", _setup),
    ("Data", "file store", _store),
    ("Data", "mlflow.db", _sqlite),
    ("Correctness", "MLflow reads the generated data (file store)", lambda r: _sample(r, "sample_file")),
    ("Correctness", "MLflow reads the generated data (SQLite)", lambda r: _sample(r, "sample_sqlite")),
    ("Correctness", "octostore lists what MLflow lists (file store)", lambda r: _agree(r, "agree_file")),
    ("Correctness", "octostore lists what MLflow lists (SQLite)", lambda r: _agree(r, "agree_sqlite")),
    ("Correctness", "filtered query returns MLflow's runs in MLflow's order", _query_agree),
    ("Cold index", "raw limit: read every file of the store (Python loop)", _range("raw_read")),
    ("Cold index", "raw limit, CPU", _range("raw_read_cpu")),
    ("Cold index", "read every file and parse every metric line", _range("raw_parse")),
    ("Cold index", "MLflow: search_runs through every run, file store", _range("mlflow_list_file")),
    ("Cold index", "MLflow: the same, CPU", _range("mlflow_list_file_cpu")),
    ("Cold index", "MLflow: search_runs through every run, SQLite", _range("mlflow_list_sqlite")),
    ("Cold index", "octostore: cold index, file store: every run answers (wall)", _range("cold_file")),
    ("Cold index", "octostore: the same (daemon CPU)", _range("cold_file_cpu")),
    ("Cold index", "octostore: then watching and re-checked, state ready (wall)", _range("cold_file_ready")),
    ("Cold index", "octostore: the same (daemon CPU)", _range("cold_file_ready_cpu")),
    ("Cold index", "octostore: cold index, SQLite (wall)", _range("cold_sqlite")),
    ("Cold index", "octostore cold index per 1,000 runs (file store)", _per_k("cold_file", "s")),
    ("Cold index", "speed-up vs MLflow file store (target >= 5x)", _x("mlflow_list_file", "cold_file")),
    ("Cold index", "speed-up vs MLflow file store, CPU", _x("mlflow_list_file_cpu", "cold_file_cpu")),
    ("Cold index", "cold index / raw read limit (target <= 2x)", _x("cold_file", "raw_read")),
    ("Cold index", "cold index / raw read limit, CPU", _x("cold_file_cpu", "raw_read_cpu")),
    ("Cold index", "speed-up vs MLflow file store to state ready, CPU", _x("mlflow_list_file_cpu", "cold_file_ready_cpu")),
    ("Cold index", "to state ready / raw read limit, CPU", _x("cold_file_ready_cpu", "raw_read_cpu")),
    ("Cold index", "speed-up vs MLflow SQLite (SQLite cold index)", _x("mlflow_list_sqlite", "cold_sqlite")),
    ("Warm start", "open -> first answer from the snapshot (target < 0.5 s)", _range("warm_open")),
    ("Warm start", "process start -> first answer from the snapshot", _range("warm_total")),
    ("Warm start", "open -> snapshot verified against disk (state ready)", _range("warm_verified")),
    ("Queries p50 / p99", "filtered, sorted search, limit 100, file store (target p50 < 5 ms)", _lat("q_filter_file")),
    ("Queries p50 / p99", "same search, SQLite store", _lat("q_filter_sqlite")),
    ("Queries p50 / p99", "MLflow search_runs on SQLite, same filter", _lat("mlflow_q_filter_sqlite")),
    ("Queries p50 / p99", "speed-up vs MLflow SQLite (target >= 50x)", _x("mlflow_q_filter_sqlite", "q_filter_file")),
    ("Queries p50 / p99", "listing page, 1,000 runs", _lat("q_page")),
    ("Queries p50 / p99", "MLflow search_runs on SQLite, 1,000 runs", _lat("mlflow_q_page_sqlite")),
    ("Queries p50 / p99", "run detail", _lat("q_run")),
    ("Queries p50 / p99", "MLflow get_run on SQLite", _lat("mlflow_q_run_sqlite")),
    ("Queries p50 / p99", "metric history, first read", _lat("q_hist_first")),
    ("Queries p50 / p99", "metric history, downsampled (cached)", _lat("q_hist")),
    ("Queries p50 / p99", "metric history size", _hist_shape),
    ("Queries p50 / p99", "MLflow get_metric_history on SQLite (full)", _lat("mlflow_q_hist_sqlite")),
    ("Updates p50 / p99", "metric line appended -> notification (target p50 < 100 ms)", _upd("upd_file")),
    ("Updates p50 / p99", "MLflow log_metric to SQLite -> notification", _upd("upd_sqlite")),
    ("Concurrency", "clients querying while a writer appends", _conc),
    ("Memory", "daemon peak RSS, cold index, file store (target < 300 MB at 10k)", _mb("rss_cold_file")),
    ("Memory", "daemon peak RSS per 1,000 runs (file store)", _per_k("rss_cold_file", "MB")),
    ("Memory", "daemon peak RSS, cold index, SQLite", _mb("rss_cold_sqlite")),
    ("Memory", "its watcher processes' RSS, file store root (two per root)", _mb("rss_watchers_file")),
    ("Memory", "daemon peak RSS, both roots after queries and concurrency", _mb("rss_all")),
    ("Start-up", "octostored process start -> first answer", _range("startup")),
    ("Start-up", "TUI first screen with data", _tui),
]


def targets(r: R) -> list[tuple[str, str, bool | None]]:
    """(target, measured, passed) for one size."""
    out: list[tuple[str, str, bool | None]] = []

    def add(name: str, value: float | None, ok: Callable[[float], bool], shown: str) -> None:
        out.append((name, shown if value is not None else "-", None if value is None else ok(value)))

    # Ratios are judged on CPU time (a loaded machine stretches wall times unevenly); wall too.
    x, w = _ratio(r, "mlflow_list_file_cpu", "cold_file_cpu"), _ratio(r, "mlflow_list_file", "cold_file")
    y = _ratio(r, "mlflow_list_file_cpu", "cold_file_ready_cpu")
    add("cold index >= 5x faster than MLflow search_runs, file store", x, lambda v: v >= 5,
        f"CPU {fmt_x(x)}, wall {fmt_x(w)}; to ready CPU {fmt_x(y)}")
    x, w = _ratio(r, "cold_file_cpu", "raw_read_cpu"), _ratio(r, "cold_file", "raw_read")
    y = _ratio(r, "cold_file_ready_cpu", "raw_read_cpu")
    add("cold index within 2x of the raw read limit", x, lambda v: v <= 2,
        f"CPU {fmt_x(x)}, wall {fmt_x(w)}; to ready CPU {fmt_x(y)}")
    x = _med(r, "warm_open")
    add("warm start from the snapshot < 0.5 s", x, lambda v: v < 0.5, fmt_s(x))
    x = _med(r, "q_filter_file")
    add("filtered, sorted query p50 < 5 ms", x, lambda v: v < 0.005, fmt_ms(x))
    x = _ratio(r, "mlflow_q_filter_sqlite", "q_filter_file")
    add("filtered query >= 50x faster than MLflow on SQLite", x, lambda v: v >= 50, fmt_x(x))
    x = _med(r, "upd_file")
    add("disk -> notification p50 < 100 ms (file store)", x, lambda v: v < 0.1, fmt_ms(x))
    x = _med(r, "upd_sqlite")
    add("disk -> notification p50 < 100 ms (SQLite)", x, lambda v: v < 0.1, fmt_ms(x))
    x = _med(r, "rss_cold_file")
    if r["runs"] >= 10_000:
        limit = 300 * r["runs"] / 10_000
        add(f"daemon RSS < {limit:.0f} MB (300 MB at 10k, linear)", x, lambda v: v < limit,
            f"{x:.0f} MB" if x is not None else "-")
    return out


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    sizes = results["sizes"]
    ns = list(sizes)
    head = [f"N = {int(n):,}" for n in ns]
    lines = [
        "# octostore vs MLflow benchmark",
        "",
        f"Machine: {meta['host']}, {meta['cpus']} CPUs ({meta['cpu_model']}), {meta['ram_gb']} GB RAM; "
        f"Python {meta['python']}, MLflow {meta['mlflow']}; octostore commit {meta['commit']}"
        + (" plus uncommitted changes to octostored/" if meta.get("dirty") else "") + ".",
        f"`import mlflow`: {fmt_s(meta['import_mlflow_s'])} wall, {fmt_s(meta['import_mlflow_cpu_s'])} CPU.",
        "Load average (1 min) at the start and end of each size: "
        + ", ".join(f"N={int(n):,}: {r['load_avg'][0]:.1f} -> {r['load_avg'][1]:.1f}"
                    for n, r in sizes.items())
        + ". Figures are wall time unless marked CPU; page cache warm (stores just read).",
        "Cells: median (min-max) over repetitions; latencies p50 / p99 over many calls. "
        "What each row measures: docs/benchmarks.md.",
        *([f"Note: {meta['note']}."] if meta.get("note") else []),
        "",
        "| | " + " | ".join(head) + " |",
        "|---|" + "---|" * len(ns),
    ]
    section = None
    for sec, label, fn in ROWS:
        if sec != section:
            lines.append(f"| **{sec}** |" + " |" * len(ns))
            section = sec
        cells = []
        for n in ns:
            try:
                cells.append(fn(sizes[n]))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "## Targets", "", "| target | " + " | ".join(head) + " |",
              "|---|" + "---|" * len(ns)]
    per = {n: {t[0]: t for t in targets(sizes[n])} for n in ns}
    names: list[str] = []
    for n in ns:
        names += [k for k in per[n] if k not in names]
    for name in names:
        cells = []
        for n in ns:
            t = per[n].get(name)
            if t is None:
                cells.append("")
            else:
                mark = {True: "pass", False: "MISS", None: "not measured"}[t[2]]
                cells.append(f"{mark} ({t[1]})" if t[2] is not None else mark)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Elapsed per size: " + ", ".join(
        f"N={int(n):,}: {fmt_s(r['elapsed_s'])}" for n, r in sizes.items()) + "."]
    return "\n".join(lines) + "\n"


def row_labels() -> list[str]:
    return [label for _, label, _ in ROWS]
