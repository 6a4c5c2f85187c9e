"""A run's logged models (MLflow 3 keeps them as their own entities) in `octostore/run` and
in the dashboard's Outputs tab, from a file store and from mlflow.db alike."""

from __future__ import annotations

from pathlib import Path

from octostore_tui.app import make_app
from octostore_tui.screens.run_detail import RunDetailScreen
from octostore_tui.widgets.artifact_tree import ArtifactTree

from .conftest import DaemonProc, make_repo
from .test_commit_models import TRAIN, _mlflow_env, _python
from .test_tui_support import no_worker_errors, wait_until  # noqa: F401


async def test_a_runs_models_are_in_its_detail_and_outputs(daemon: DaemonProc,
                                                           short_tmp: Path) -> None:
    repo = make_repo(short_tmp / "proj")
    made = _python([TRAIN, (repo / "mlruns").as_uri(), f"sqlite:///{repo / 'mlflow.db'}"],
                   repo, _mlflow_env())
    with daemon.client() as c:
        c.call("octostore/sync", root=str(repo))
        for rid, model_id, _slope in made:
            run = c.call("octostore/run", root=str(repo), run_id=rid)
            [model] = run["models"]
            assert model["model_id"] == model_id and model["name"] == "model"
            assert "sklearn" in model["flavors"] and model["signature"]
            assert model["size"] > 0 and model["local"] is True
        # The mlflow.db run logged only a model: MLflow 3 made it no artifact folder at all.
        # It has no artifacts; they are not "on another machine".
        arts = c.call("octostore/artifacts", root=str(repo), run_id=made[1][0])
        assert arts["artifacts"] == [] and arts["warnings"] == []

    app = make_app(str(repo), daemon.socket, autostart=False, timeout=15)
    async with app.run_test(size=(160, 48)) as pilot:
        await wait_until(pilot, lambda: app.first_data_seconds is not None, what="insights")
        app.push_screen(RunDetailScreen(made[1][0]))  # the mlflow.db run
        detail = await wait_until(
            pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen, what="detail")
        await wait_until(pilot, lambda: detail.run is not None, what="the run")
        await pilot.press("5")
        tree = detail.query_one(ArtifactTree)
        label = await wait_until(
            pilot, lambda: next((str(n.label) for n in tree.root.children
                                 if "model" in (n.data or {})), None), what="the model entry")
        assert label.startswith("◆ model") and "sklearn" in label and "signature" in label
