"""A generated corpus of damaged MLflow stores, with what the daemon must make of each.

:func:`build` writes, under one root, a file store in MLflow 3.x's layout (as
``MlflowClient`` 3.17.2 writes it: sorted ``meta.yaml`` keys, quoted ids,
integer statuses, ``params/<key>`` holding the raw value, metric lines
``<ms> <value> <step>``) and a few SQLite files.  Healthy runs sit next to
damaged ones in the same experiments.  Every damaged thing comes with a
:class:`Damage` record: where the warning must appear (on the run, its
experiment, or its store), the file it must name and a pattern of the problem
it must state; damaged runs that can still be read also carry the data the
daemon must still get right.  Healthy runs come with their expected rows.

Nothing here imports MLflow (importing it costs seconds), so the corpus is
cheap enough to rebuild per test; ``test_reliability_stores`` checks once that
MLflow reads the healthy runs exactly as :attr:`Corpus.healthy` says.

Damage that needs permissions (``chmod 000``) only bites a process without
``CAP_DAC_OVERRIDE``: tests run the daemon with its capabilities dropped when
they run as root (see :data:`Damage.needs_permissions`).
"""

from __future__ import annotations

import os
import random
import sqlite3
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

T0 = 1_700_000_000_000
"""Base timestamp (ms) of every generated run."""

STATUS_CODES = {"RUNNING": 1, "SCHEDULED": 2, "FINISHED": 3, "FAILED": 4, "KILLED": 5}


@dataclass
class Expected:
    """A run as ``octostore/runs`` must list it (metric values as JSON carries them)."""

    run_id: str
    experiment_id: str
    run_name: str | None
    status: str
    lifecycle_stage: str
    start_time: int | None
    end_time: int | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    """Latest value per key: a float, or "NaN" / "Infinity" / "-Infinity"."""
    steps: dict[str, int] = field(default_factory=dict)
    """Step of the latest value, for the keys where it is checked."""
    mlflow_reads: bool = True
    """False when MLflow refuses the run (its key validation rejects some names)."""


@dataclass
class Damage:
    kind: str
    """What was done to the store (one per generator function)."""
    level: str
    """Where the warning must appear: "run", "experiment" or "source"."""
    file: str
    """The path the warning must name: relative to the run folder for "run" warnings,
    to the store for "experiment" and "source" warnings."""
    problem: str
    """A regular expression the warning must match (case-insensitive)."""
    source: str = "mlruns"
    """Id of the store (its path relative to the root)."""
    run_id: str | None = None
    experiment_id: str | None = None
    expect: Expected | None = None
    """The damaged run as it must still be indexed; None when it must be skipped."""
    needs_permissions: bool = False
    """The damage is a ``chmod``: it only shows in a process that permissions apply to."""


@dataclass
class Corpus:
    root: Path
    store: Path
    healthy: dict[str, Expected] = field(default_factory=dict)
    damages: list[Damage] = field(default_factory=list)
    long_metric: tuple[str, str, int] = ("", "", 0)
    """(run id, key, points) of the 100,000-step metric."""
    half_line: tuple[str, str, Path] = ("", "", Path())
    """(run id, key, file) of the metric whose last line is half written."""

    def expected_runs(self) -> dict[str, Expected]:
        """Every run the index must hold: the healthy ones and the readable damaged ones."""
        out = dict(self.healthy)
        for d in self.damages:
            if d.expect is not None:
                out[d.expect.run_id] = d.expect
        return out

    def skipped_runs(self) -> set[str]:
        return {d.run_id for d in self.damages
                if d.run_id and d.expect is None and d.level == "source"}


# -- writing MLflow's layout ----------------------------------------------------------------

def _yaml_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if v == [] or v == {}:
        return "[]" if v == [] else "{}"
    s = str(v)
    if s == "" or s[0] in "'\"&*!|>%@`{[#-?:,] " or s.isdigit() or ": " in s or " #" in s:
        return "'" + s.replace("'", "''") + "'"
    return s


def meta_text(meta: dict[str, Any]) -> str:
    return "".join(f"{k}: {_yaml_value(meta[k])}\n" for k in sorted(meta))


def write_experiment(store: Path, exp_id: str, name: str, folder: str | None = None) -> Path:
    d = store / (folder or exp_id)
    d.mkdir(parents=True, exist_ok=True)
    (d / "meta.yaml").write_text(meta_text({
        "artifact_location": (d.as_uri()),
        "creation_time": T0,
        "experiment_id": exp_id,
        "last_update_time": T0,
        "lifecycle_stage": "active",
        "name": name,
    }))
    return d


def run_meta(run_id: str, exp_id: str, exp_dir: Path, *, name: str | None, status: str,
             start: int | None, end: int | None, stage: str = "active") -> dict[str, Any]:
    meta = {
        "artifact_uri": (exp_dir / run_id / "artifacts").as_uri(),
        "end_time": end,
        "entry_point_name": "",
        "experiment_id": exp_id,
        "lifecycle_stage": stage,
        "run_id": run_id,
        "run_name": name or "",
        "source_name": "",
        "source_type": 4,
        "source_version": "",
        "start_time": start,
        "status": STATUS_CODES[status],
        "tags": [],
        "user_id": "tester",
    }
    if stage == "deleted":
        meta["deleted_time"] = (end or T0) + 1
    return meta


def write_run(exp_dir: Path, exp_id: str, *, run_id: str | None = None, name: str | None = "run",
              status: str = "FINISHED", stage: str = "active", start: int | None = T0,
              end: int | None = T0 + 1000, params: dict[str, str] | None = None,
              tags: dict[str, str] | None = None,
              metrics: dict[str, list[tuple[int, float, int]]] | None = None,
              meta: dict[str, Any] | None = None) -> tuple[Path, Expected]:
    """Write one healthy run as MLflow does; return its folder and expected row."""
    run_id = run_id or uuid.uuid4().hex
    rd = exp_dir / run_id
    rd.mkdir(parents=True)
    m = run_meta(run_id, exp_id, exp_dir, name=name, status=status, start=start, end=end,
                 stage=stage)
    if meta:
        m.update(meta)
    (rd / "meta.yaml").write_text(meta_text(m))
    all_tags = dict(tags or {})
    if name:
        all_tags.setdefault("mlflow.runName", name)
    all_tags.setdefault("mlflow.user", "tester")
    for sub, kv in (("params", params or {}), ("tags", all_tags)):
        (rd / sub).mkdir()
        for k, v in kv.items():
            p = rd / sub / k
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(v.encode("utf-8"))
    (rd / "metrics").mkdir()
    exp_metrics: dict[str, Any] = {}
    steps: dict[str, int] = {}
    for k, points in (metrics or {}).items():
        p = rd / "metrics" / k
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("".join(f"{ts} {v!r} {st}\n" for ts, v, st in points))
        ts, v, st = max(points, key=lambda q: (q[2], q[0], q[1]))
        exp_metrics[k] = json_value(v)
        steps[k] = st
    exp = Expected(run_id, exp_id, name or None, status, stage, start, end, dict(params or {}),
                   all_tags, exp_metrics, steps)
    return rd, exp


def set_meta(run_dir: Path, **raw: str) -> None:
    """Replace the raw YAML text of some ``meta.yaml`` keys (to damage their values)."""
    lines = (run_dir / "meta.yaml").read_text().splitlines()
    out = [f"{k}: {raw[k]}" if (k := ln.partition(":")[0]) in raw else ln for ln in lines]
    (run_dir / "meta.yaml").write_text("\n".join(out) + "\n")


def json_value(v: float) -> Any:
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    return v


# -- the corpus ------------------------------------------------------------------------------

def build(root: Path, *, seed: int = 7, healthy: int = 24, long_steps: int = 100_000) -> Corpus:
    """Write the corpus under ``root`` (which must exist) and return what it must index as."""
    rng = random.Random(seed)
    store = root / "mlruns"
    corpus = Corpus(root, store)
    write_experiment(store, "0", "Default")
    good = write_experiment(store, "1", "healthy ünïcode experiment")
    bad = write_experiment(store, "2", "damaged")

    # Healthy runs: every status, deleted ones, legacy 2-field lines, several metrics.
    statuses = list(STATUS_CODES)
    for i in range(healthy):
        status = statuses[i % len(statuses)]
        pts = [(T0 + 10 * s, rng.uniform(0, 1), s) for s in range(rng.randint(1, 20))]
        legacy = [(T0 + s, float(s), 0) for s in range(3)]
        _, exp = write_run(
            good, "1", name=f"run-{i}", status=status,
            stage="deleted" if i % 7 == 3 else "active",
            end=None if status == "RUNNING" else T0 + 5000 + i,
            params={"alpha": f"{i / 10}", "model": rng.choice(["rf", "linear", "mlp"])},
            tags={"team": "ab"[i % 2]},
            metrics={"loss": pts, "acc": [(T0, i / 100, 0)]},
        )
        if i == 0:
            (good / exp.run_id / "metrics" / "legacy").write_text(
                "".join(f"{ts} {v!r}\n" for ts, v, _ in legacy))
            exp.metrics["legacy"] = 2.0
        corpus.healthy[exp.run_id] = exp

    for make in DAMAGE:
        make(corpus, good, bad, rng)
    _long_metric(corpus, good, long_steps)
    _non_numeric_experiment(corpus)
    _broken_experiment_meta(corpus)
    _sqlite_stores(corpus)
    return corpus


def _long_metric(corpus: Corpus, good: Path, n: int) -> None:
    pts = [(T0 + s, s / n, s) for s in range(n)]
    _, exp = write_run(good, "1", name="long", metrics={"curve": pts})
    corpus.healthy[exp.run_id] = exp
    corpus.long_metric = (exp.run_id, "curve", n)


def _non_numeric_experiment(corpus: Corpus) -> None:
    # MLflow accepts any id matching [a-zA-Z0-9][\w-]{0,63}: such an experiment is healthy.
    d = write_experiment(corpus.store, "abc", "not a number")
    _, exp = write_run(d, "abc", name="in-abc", params={"p": "1"})
    corpus.healthy[exp.run_id] = exp


def _broken_experiment_meta(corpus: Corpus) -> None:
    d = corpus.store / "3"
    d.mkdir()
    _, exp = write_run(d, "3", name="orphaned", params={"p": "2"})
    corpus.healthy[exp.run_id] = exp
    (d / "meta.yaml").write_text("artifact_location: file:///x\nexperiment_id: '3\nname: bro")
    corpus.damages.append(Damage("truncated experiment meta.yaml", "experiment", "3/meta.yaml",
                                 r"invalid YAML", experiment_id="3"))


# Each function below damages one run (or file) in one way and records what must follow.

def _damaged_run(corpus: Corpus, bad: Path, **kw: Any) -> tuple[Path, Expected]:
    return write_run(bad, "2", params={"ok": "yes"}, metrics={"m": [(T0, 0.5, 0)]}, **kw)


def _skipped(corpus: Corpus, kind: str, run_dir: Path, problem: str, file: str = "meta.yaml",
             **kw: Any) -> None:
    rel = f"{run_dir.parent.name}/{run_dir.name}/{file}"
    corpus.damages.append(Damage(kind, "source", rel, problem, run_id=run_dir.name, **kw))


def _on_run(corpus: Corpus, kind: str, exp: Expected, file: str, problem: str, **kw: Any) -> None:
    corpus.damages.append(Damage(kind, "run", file, problem, run_id=exp.run_id, expect=exp, **kw))


def meta_truncated(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    text = (rd / "meta.yaml").read_text()
    (rd / "meta.yaml").write_text(text[: text.index("experiment_id: '2'") + 16])
    _skipped(corpus, "truncated meta.yaml", rd, r"invalid YAML at line \d+")


def meta_truncated_before_run_id(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    text = (rd / "meta.yaml").read_text()
    (rd / "meta.yaml").write_text(text[: text.index("run_id:")])
    _skipped(corpus, "meta.yaml cut before run_id", rd, r"no run_id")


def meta_empty(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    (rd / "meta.yaml").write_bytes(b"")
    _skipped(corpus, "empty meta.yaml", rd, r"empty")


def meta_not_a_mapping(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    for body, what in ((b"- run_id\n- status\n", "list"), (b"just some text\n", "str"),
                       (b"42\n", "int")):
        rd, _ = _damaged_run(corpus, bad)
        (rd / "meta.yaml").write_bytes(body)
        _skipped(corpus, f"meta.yaml is a {what}", rd, rf"a {what}, not a mapping")


def meta_not_utf8(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    (rd / "meta.yaml").write_bytes((rd / "meta.yaml").read_bytes().replace(b"tester", b"t\xffster"))
    _skipped(corpus, "meta.yaml not UTF-8", rd, r"not UTF-8")


def meta_missing(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    (rd / "meta.yaml").unlink()
    _skipped(corpus, "run folder without meta.yaml", rd, r"missing")


def meta_is_a_folder(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    (rd / "meta.yaml").unlink()
    (rd / "meta.yaml").mkdir()
    _skipped(corpus, "meta.yaml is a folder", rd, r"is a folder")


def meta_symlink_loop(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    (rd / "meta.yaml").unlink()
    (rd / "meta.yaml").symlink_to("meta.yaml")
    _skipped(corpus, "meta.yaml is a symlink to itself", rd, r"symbolic links")


def meta_fifo(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    (rd / "meta.yaml").unlink()
    os.mkfifo(rd / "meta.yaml")
    _skipped(corpus, "meta.yaml is a named pipe (opening it blocks)", rd, r"not a regular file")


def meta_unreadable(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    os.chmod(rd / "meta.yaml", 0)
    _skipped(corpus, "meta.yaml unreadable", rd, r"permission denied", needs_permissions=True)


def run_folder_unreadable(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    os.chmod(rd, 0)
    _skipped(corpus, "run folder unreadable", rd, r"permission denied", needs_permissions=True)


def meta_wrong_types(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad, name="typed")
    set_meta(rd, start_time="yesterday", end_time="[1, 2]", status="banana",
             lifecycle_stage="7", run_name="{a: 1}", user_id="[x, y]")
    # The run is still indexed: the broken fields are left empty, the rest is read.
    exp.start_time = exp.end_time = None
    exp.status = "RUNNING"
    exp.run_name = "typed"  # from the mlflow.runName tag, as MLflow falls back
    for what in ("start_time", "end_time", "status", "lifecycle_stage", "run_name", "user_id"):
        _on_run(corpus, f"meta.yaml {what} of the wrong type", exp, "meta.yaml", rf"{what}")


def meta_huge_numbers(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    set_meta(rd, start_time="9" * 40)
    exp.start_time = None
    _on_run(corpus, "meta.yaml time beyond 64 bits", exp, "meta.yaml",
            r"start_time .*out of range")


def meta_unknown_fields(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    # MLflow ignores fields it does not know (RunInfo.from_dictionary filters them): so do we.
    rd, exp = write_run(good, "1", name="extra-fields", params={"p": "3"})
    with open(rd / "meta.yaml", "a") as f:
        f.write("favourite_colour: blue\nzz_nested:\n  a: 1\n  b: [1, 2]\n")
    corpus.healthy[exp.run_id] = exp


def meta_yaml_bomb(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    # Nine levels of nine aliases: 9**9 strings if anyone ever turned it into text.
    rd, exp = _damaged_run(corpus, bad, name="bombed")
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    set_meta(rd, run_name="*a9")
    (rd / "meta.yaml").write_text("\n".join(lines) + "\n" + (rd / "meta.yaml").read_text())
    _on_run(corpus, "meta.yaml billion laughs", exp, "meta.yaml", r"run_name")


def meta_deeply_nested(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, _ = _damaged_run(corpus, bad)
    (rd / "meta.yaml").write_text("x: " + "[" * 20000 + "]" * 20000 + "\n"
                                  + (rd / "meta.yaml").read_text())
    _skipped(corpus, "meta.yaml nested 20,000 deep", rd, r"too deeply nested|invalid YAML")


def meta_run_id_mismatch(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    copy = rd.parent / uuid.uuid4().hex
    os.rename(rd, copy)  # the run keeps the id its meta.yaml says
    _on_run(corpus, "run folder renamed", exp, "meta.yaml", rf"folder is {copy.name}")


def metric_garbage(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    (rd / "metrics" / "noisy").write_bytes(
        b"%d 0.25 0\n" % T0 + b"hello world\n" + b"1 2 3 4\n" + b"%d abc 1\n" % T0
        + b"\x00\xff\xfe binary\n" + b"%d 0.75 2\n" % T0 + b"\n\n" + b"x 1 2\n")
    exp.metrics["noisy"] = 0.75
    exp.steps["noisy"] = 2
    for line in (2, 3, 4, 5, 9):
        _on_run(corpus, f"metric file garbage line {line}", exp, "metrics/noisy", rf"line {line}\b")


def metric_non_finite(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    pts = {"nan": float("nan"), "pinf": float("inf"), "ninf": float("-inf"), "negzero": -0.0,
           "huge": 1.7976931348623157e308, "tiny": 5e-324}
    _, exp = write_run(good, "1", name="non-finite",
                       metrics={k: [(T0, 1.0, 0), (T0 + 1, v, 1)] for k, v in pts.items()})
    # "1e400" parses to inf, as Python's float() (and so MLflow) reads it.
    (good / exp.run_id / "metrics" / "overflow").write_text(f"{T0} 1e400 0\n")
    exp.metrics["overflow"] = "Infinity"
    corpus.healthy[exp.run_id] = exp


def metric_out_of_range(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    (rd / "metrics" / "wild").write_text(f"{T0} 0.5 1\n{T0} 0.9 {10**30}\n{10**25} 0.1 2\n")
    exp.metrics["wild"] = 0.5
    exp.steps["wild"] = 1
    for line in (2, 3):
        _on_run(corpus, f"metric line {line} beyond 64 bits", exp, "metrics/wild",
                rf"line {line}\b.*out of range")


def metric_half_written(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    # A writer is in the middle of a line: complete lines count, the tail waits for its end.
    rd, exp = write_run(good, "1", name="live", status="RUNNING", end=None,
                        metrics={"loss": [(T0, 0.9, 0), (T0 + 1, 0.8, 1)]})
    with open(rd / "metrics" / "loss", "ab") as f:
        f.write(b"%d 0.7" % (T0 + 2))
    corpus.healthy[exp.run_id] = exp
    corpus.half_line = (exp.run_id, "loss", rd / "metrics" / "loss")


def metric_unreadable(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    (rd / "metrics" / "secret").write_text(f"{T0} 1.0 0\n")
    os.chmod(rd / "metrics" / "secret", 0)
    _on_run(corpus, "metric file unreadable", exp, "metrics/secret", r"permission denied",
            needs_permissions=True)


def metrics_folder_unreadable(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    os.chmod(rd / "metrics", 0)
    exp.metrics = {}
    exp.steps = {}
    _on_run(corpus, "metrics folder unreadable", exp, "metrics", r"permission denied",
            needs_permissions=True)


def params_and_tags_odd_values(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    _, exp = write_run(
        good, "1", name="odd values",
        params={"multi": "line one\nline two\n", "crlf": "a\r\nb", "empty": "",
                "spaces": "  padded  ", "quote": "it's \"quoted\"", "long": "x" * 6000},
        tags={"note": "first\nsecond", "json": '{"a": [1, 2]}'},
    )
    corpus.healthy[exp.run_id] = exp


def params_not_utf8(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    (rd / "params" / "latin1").write_bytes("café".encode("latin-1"))
    (rd / "tags" / "bytes").write_bytes(b"\xff\xfe\x00x")
    exp.params["latin1"] = "caf\ufffd"
    exp.tags["bytes"] = "\ufffd\ufffd\x00x"
    _on_run(corpus, "param not UTF-8", exp, "params/latin1", r"not UTF-8")
    _on_run(corpus, "tag not UTF-8", exp, "tags/bytes", r"not UTF-8")


def odd_names(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    _, exp = write_run(
        good, "1", name="naïve run 名前 with spaces",
        params={"with space": "1", "ünïcödé κλειδί": "2", "nested/path/key": "3",
                "colon:key": "4"},
        tags={"dir/tag": "t", "名前": "name"},
        metrics={"val/loss": [(T0, 0.1, 0)], "métrique": [(T0, 0.2, 0)],
                 "with space": [(T0, 0.3, 0)]},
    )
    corpus.healthy[exp.run_id] = exp
    # Names MLflow's key validation refuses (its search then fails on the whole store); they
    # are only files to us, and read as such.
    _, exp = write_run(
        good, "1", name="names mlflow refuses",
        params={"emoji 🎉": "4", "back\\slash": "5", "new\nline": "6", "tab\there": "7"},
        tags={"😀": "smile"},
    )
    exp.mlflow_reads = False
    corpus.healthy[exp.run_id] = exp


def symlink_loops(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    (rd / "params" / "loop").symlink_to(".")
    (rd / "params" / "up").symlink_to("..")
    (rd / "metrics" / "loop").symlink_to(".")
    (rd / "tags" / "self").symlink_to("self")
    (rd / "params" / "dangling").symlink_to("/nonexistent/octostore")
    _on_run(corpus, "params folder symlinked into itself", exp, "params/loop", r"symlink")
    _on_run(corpus, "params symlink to the run folder", exp, "params/up", r"symlink")
    _on_run(corpus, "metrics folder symlinked into itself", exp, "metrics/loop", r"symlink")
    _on_run(corpus, "tag file symlinked to itself", exp, "tags/self", r"symbolic links")
    _on_run(corpus, "dangling param symlink", exp, "params/dangling", r"dangling symlink")


def special_files(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    # A param that is a named pipe would block a plain open(); one that is /dev/zero would
    # never end.  Neither may stall the scan.
    rd, exp = _damaged_run(corpus, bad)
    os.mkfifo(rd / "params" / "pipe")
    (rd / "params" / "zero").symlink_to("/dev/zero")
    os.mkfifo(rd / "metrics" / "pipe")
    for f in ("params/pipe", "params/zero", "metrics/pipe"):
        _on_run(corpus, f"{f} is not a regular file", exp, f, r"not a regular file")


def param_unreadable(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    (rd / "params" / "secret").write_text("hidden")
    os.chmod(rd / "params" / "secret", 0)
    _on_run(corpus, "param unreadable", exp, "params/secret", r"permission denied",
            needs_permissions=True)


def inputs_broken(corpus: Corpus, good: Path, bad: Path, rng: random.Random) -> None:
    rd, exp = _damaged_run(corpus, bad)
    (rd / "inputs" / "abc").mkdir(parents=True)
    (rd / "inputs" / "abc" / "meta.yaml").write_text("destination_id: [")
    _on_run(corpus, "dataset input meta.yaml broken", exp, "inputs/abc/meta.yaml",
            r"invalid YAML")


DAMAGE = [
    meta_truncated, meta_truncated_before_run_id, meta_empty, meta_not_a_mapping, meta_not_utf8,
    meta_missing, meta_is_a_folder, meta_symlink_loop, meta_fifo, meta_unreadable,
    run_folder_unreadable, meta_wrong_types, meta_huge_numbers, meta_unknown_fields,
    meta_yaml_bomb, meta_deeply_nested, meta_run_id_mismatch, metric_garbage, metric_non_finite,
    metric_out_of_range, metric_half_written, metric_unreadable, metrics_folder_unreadable,
    params_and_tags_odd_values, params_not_utf8, odd_names, symlink_loops, special_files,
    param_unreadable, inputs_broken,
]


# -- SQLite ----------------------------------------------------------------------------------

CURRENT_REVISION = "f4a9b2c7d1e6"
"""MLflow 3.18.0's head (the one sqlitestore.MLFLOW_HEAD names)."""
OLD_REVISION = "ff01da956556"
"""MLflow 1.0's first schema: no metric step, no is_nan, no latest_metrics, no inputs."""

_OLD_DDL = """
CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name VARCHAR(256) NOT NULL UNIQUE,
    artifact_location VARCHAR(256), lifecycle_stage VARCHAR(32));
CREATE TABLE runs (run_uuid VARCHAR(32) PRIMARY KEY, name VARCHAR(250), source_type VARCHAR(20),
    source_name VARCHAR(500), entry_point_name VARCHAR(50), user_id VARCHAR(256),
    status VARCHAR(20), start_time BIGINT, end_time BIGINT, source_version VARCHAR(50),
    lifecycle_stage VARCHAR(20), artifact_uri VARCHAR(200), experiment_id INTEGER);
CREATE TABLE params (key VARCHAR(250), value VARCHAR(250), run_uuid VARCHAR(32),
    PRIMARY KEY (key, run_uuid));
CREATE TABLE tags (key VARCHAR(250), value VARCHAR(250), run_uuid VARCHAR(32),
    PRIMARY KEY (key, run_uuid));
CREATE TABLE metrics (key VARCHAR(250), value FLOAT NOT NULL, timestamp BIGINT,
    run_uuid VARCHAR(32), PRIMARY KEY (key, timestamp, run_uuid, value));
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
"""

_CURRENT_EXTRA = """
ALTER TABLE experiments ADD COLUMN creation_time BIGINT;
ALTER TABLE experiments ADD COLUMN last_update_time BIGINT;
ALTER TABLE runs ADD COLUMN deleted_time BIGINT;
ALTER TABLE metrics ADD COLUMN step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE metrics ADD COLUMN is_nan BOOLEAN NOT NULL DEFAULT 0;
CREATE TABLE latest_metrics (key VARCHAR(250), value FLOAT NOT NULL, timestamp BIGINT,
    step BIGINT NOT NULL, is_nan BOOLEAN NOT NULL, run_uuid VARCHAR(32),
    PRIMARY KEY (key, run_uuid));
CREATE TABLE experiment_tags (key VARCHAR(250), value VARCHAR(5000), experiment_id INTEGER,
    PRIMARY KEY (key, experiment_id));
"""


def write_sqlite(path: Path, *, old: bool = False, runs: int = 3) -> dict[str, Expected]:
    """A small MLflow tracking database (current schema, or MLflow 1.0's); its runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    out: dict[str, Expected] = {}
    with conn:
        conn.executescript(_OLD_DDL + ("" if old else _CURRENT_EXTRA))
        conn.execute("INSERT INTO alembic_version VALUES (?)",
                     (OLD_REVISION if old else CURRENT_REVISION,))
        conn.execute("INSERT INTO experiments (experiment_id, name, artifact_location,"
                     " lifecycle_stage) VALUES (0, 'Default', 'mlruns/0', 'active')")
        for i in range(runs):
            rid = uuid.uuid4().hex
            conn.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
                " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
                " artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'tester',"
                " 'FINISHED', ?, ?, '', 'active', ?, 0)",
                (rid, f"sql-{i}", T0 + i, T0 + 100 + i, f"mlruns/0/{rid}/artifacts"))
            conn.execute("INSERT INTO params VALUES ('alpha', ?, ?)", (str(i), rid))
            conn.execute("INSERT INTO tags VALUES ('mlflow.runName', ?, ?)", (f"sql-{i}", rid))
            value = 0.5 + i
            if old:
                conn.execute("INSERT INTO metrics VALUES ('loss', ?, ?, ?)", (value, T0, rid))
            else:
                conn.execute("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                             " VALUES ('loss', ?, ?, ?, 0, 0)", (value, T0, rid))
                conn.execute("INSERT INTO latest_metrics VALUES ('loss', ?, ?, 0, 0, ?)",
                             (value, T0, rid))
            out[rid] = Expected(rid, "0", f"sql-{i}", "FINISHED", "active", T0 + i,
                                T0 + 100 + i, {"alpha": str(i)}, {"mlflow.runName": f"sql-{i}"},
                                {"loss": value})
    conn.close()
    return out


def _sqlite_stores(corpus: Corpus) -> None:
    old = corpus.root / "legacy" / "mlflow.db"
    corpus.healthy.update(write_sqlite(old, old=True))
    corpus.damages.append(Damage("SQLite schema of MLflow 1.0", "source", "legacy/mlflow.db",
                                 rf"schema revision {OLD_REVISION}", source="legacy/mlflow.db"))
    trunc = corpus.root / "cut" / "mlflow.db"
    write_sqlite(trunc, runs=50)
    with open(trunc, "r+b") as f:
        f.truncate(os.path.getsize(trunc) // 3)
    corpus.damages.append(Damage("truncated SQLite file", "source", "cut/mlflow.db",
                                 r"truncated, corrupt or not a database|malformed",
                                 source="cut/mlflow.db"))
    junk = corpus.root / "junk" / "mlflow.db"
    junk.parent.mkdir()
    junk.write_bytes(random.Random(1).randbytes(8192))
    corpus.damages.append(Damage("random bytes named mlflow.db", "source", "junk/mlflow.db",
                                 r"not a database", source="junk/mlflow.db"))


def permissions_apply() -> bool:
    """True when this process cannot read a ``chmod 000`` file (not root, or no DAC caps)."""
    import tempfile

    fd, path = tempfile.mkstemp()
    try:
        os.close(fd)
        os.chmod(path, 0)
        try:
            open(path).close()
            return False
        except PermissionError:
            return True
    finally:
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        os.unlink(path)
