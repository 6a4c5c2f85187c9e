"""The benchmark harness at a tiny size (CI keeps it working; no timing is asserted).

* ``python -m bench --smoke`` (N=50, S=10) runs every phase against real
  daemons and a real MLflow, and fills every row of its table; the stores it
  generated read back equal through MLflow and through the daemon.
* The bulk loader the harness uses for big N writes the same rows as
  ``mlflow migrate-filestore``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import report
from bench.generate import Spec, generate
from bench.run import compare_rows, parse_tui
from bench.sqlite_load import bulk_load, migrate_filestore, table_rows
from bench.worker_client import MlflowWorker

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def test_harness_smoke(tmp_path: Path) -> None:
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--stores-dir", str(tmp_path / "stores"),
         "--results-dir", str(results), "--machine", "smoke"],
        cwd=REPO, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    (md,) = results.glob("*-smoke.md")
    (js,) = results.glob("*-smoke.json")
    text = md.read_text()
    assert text in proc.stdout  # printed too
    r = json.loads(js.read_text())["sizes"]["50"]

    # Every row of the table is there and has a figure (the TUI row may say "not measured").
    table = {line.split(" | ")[0].lstrip("| ").strip(): line for line in text.splitlines()
             if line.startswith("| ")}
    for label in report.row_labels():
        assert label in table, f"row {label!r} missing from the table"
        cells = table[label].strip().strip("|").split(" | ")[1:]
        if label != "TUI first screen with data":
            assert cells and all(c.strip() not in ("", "-") for c in cells), table[label]
    assert "## Targets" in text

    # The generated data reads back equal through MLflow and through the daemon.
    assert r["runs"] == 50
    assert r["sample_file"]["problems"] == 0, r["sample_file"]
    assert r["sample_sqlite"]["problems"] == 0, r["sample_sqlite"]
    assert r["agree_file"]["diffs"] == 0, r["agree_file"]
    assert r["agree_sqlite"]["diffs"] == 0, r["agree_sqlite"]
    assert r["query_agree"]["file_equal"] and r["query_agree"]["sqlite_equal"], r["query_agree"]
    assert r["upd_missed"] == {"file": 0, "sqlite": 0}
    assert r["concurrency"]["errors"] == 0 and r["concurrency"]["requests"] > 0
    assert r["hist_shape"] == {"points": 2000, "returned": 500}


def _normalized(db: str) -> dict:
    rows = table_rows(db)
    # Alembic's batch migrations emit a table's CHECK constraints in no fixed order.
    rows["_schema"] = sorted(
        (kind, name, sorted(sql.replace(", \n", "\n").splitlines())) for kind, name, sql in rows["_schema"])
    return rows


def test_bulk_loader_equals_migrate_filestore(tmp_path: Path) -> None:
    m = generate(Spec(runs=30, experiments=2, steps=10, long_steps=50, seed=7), str(tmp_path / "s"),
                 log=None)
    p = m["paths"]
    migrated = str(tmp_path / "migrated.db")
    migrate_filestore(p["file_root"], migrated, str(tmp_path / "migrate.log"))
    worker = MlflowWorker(str(tmp_path / "worker.log"))
    try:
        worker.call("make_schema", path=str(tmp_path / "schema.db"))
    finally:
        worker.close()
    bulk = str(tmp_path / "bulk.db")
    out = bulk_load(p["mlruns"], bulk, str(tmp_path / "schema.db"))
    assert out["counts"]["runs"] == 30 and out["counts"]["metrics"] == 30 * 8 * 10 + 50 + 4 * 10

    want, got = _normalized(migrated), _normalized(bulk)
    assert set(got) == set(want)
    for table in sorted(want):
        assert got[table] == want[table], f"table {table} differs from migrate-filestore's"
    assert want["_journal_mode"] == "wal"


def test_compare_rows_reports_differences() -> None:
    a = [{"run_id": "r1", "params": {"a": "1"}}, {"run_id": "r2"}]
    b = [{"run_id": "r1", "params": {"a": "2"}}, {"run_id": "r3"}]
    out = compare_rows(a, b)
    assert out["diffs"] == 3 and out["equal"] == 0
    assert compare_rows(a, a)["diffs"] == 0


@pytest.mark.parametrize(("stdout", "want"), [
    ("starting\n0.84\n", 0.84),
    ('{"seconds": 1.5, "runs": 1000}\n', 1.5),
    ('{"seconds": [1.0, 2.0, 3.0]}\n', 2.0),
])
def test_tui_answer_is_read(stdout: str, want: float) -> None:
    out = parse_tui(0, stdout, "")
    assert out["status"] == "ok" and out["median"] == want
    assert parse_tui(1, "", "Traceback\nBoom")["status"] == "failed"
