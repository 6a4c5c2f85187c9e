"""Give the e2e demo's latest run a console log, as `octostore run -- python train.py` keeps one.

Writes ``.octostore/logs/<id>.log`` (raw bytes: ANSI colours, ``\\r`` progress updates) and its
``.idx`` time marks in the agreed format (octostored/console/logformat.py), and tags the run with
``octostore.console_log`` through MLflow. Prints JSON: the run, the log's path, and the lines a
terminal shows for the run's part of it (what the run view must show).

Usage (in the demo workspace, with the repo's venv): python demo_console_log.py
"""

from __future__ import annotations

import json
import os
import sys

from mlflow.tracking import MlflowClient

sys.path.insert(0, os.environ["OCTOSTORE_REPO"])
from octostored.console import logformat  # noqa: E402  (the agreed names)

client = MlflowClient()  # the demo's default store, as train.py uses it
exp = client.get_experiment_by_name("wine-quality")
run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)[0]
info, params = run.info, run.data.params
start, end = info.start_time, info.end_time or info.start_time + 1000

before = "loaded 4898 wines: 2938 train, 980 validation, 980 test\n"
bar = "".join(f"\rtrees: {i:3d}%|{'█' * (i // 10):<10}| {i}/100" for i in range(0, 101, 5))
curve = [f"  trees {s:>4}: val_rmse={0.68 - s / 10000:.4f}\n" for s in range(10, 101, 10)]
during = (
    f"run {info.run_id} ({info.run_name}): fitting {params.get('n_estimators', '100')} trees, "
    f"max_depth={params.get('max_depth')}, seed={params.get('seed')}\n"
    f"\x1b[2mgrowing the forest\x1b[0m\n{bar}\n" + "".join(curve)
    + "\x1b[33mwarning:\x1b[0m 3 features have zero importance\n"
    + "\x1b[1;32m✓ done\x1b[0m rmse=0.6904 mae=0.5239 r2=0.4052\n"
)
data_before, data_during = before.encode(), during.encode()

log_id = f"e2e-{info.run_id[:8]}"
log_file = logformat.log_path(os.getcwd(), log_id)
os.makedirs(os.path.dirname(log_file), exist_ok=True)
with open(log_file, "wb") as f:
    f.write(data_before + data_during)
o1 = len(data_before)
size = o1 + len(data_during)
with open(logformat.index_path(log_file), "wb") as f:
    f.write(logformat.index_line(0, start - 1500, v=1, argv=["python", "train.py"], pid=2**22 + 1))
    f.write(logformat.index_line(o1, start + 5))
    f.write(logformat.index_line(o1 + len(data_during) // 2, start + 300))
    f.write(logformat.index_line(size, end + 600, exit=0))
rel = logformat.rel_path(os.getcwd(), log_file)
client.set_tag(info.run_id, logformat.TAG, rel)

shown = [line.rsplit("\r", 1)[-1] for line in during.rstrip("\n").split("\n")]
shown = [line.replace("\x1b[2m", "").replace("\x1b[33m", "").replace("\x1b[1;32m", "").replace("\x1b[0m", "")
         for line in shown]
print(json.dumps({"run_id": info.run_id, "run_name": info.run_name, "path": rel,
                  "lines": shown, "hidden": before.strip(), "val_rmse_lines": len(curve)}))
