"""``octostore init``: a new ML project laid out for octostore, ready to commit.

The layout follows Cookiecutter Data Science (data stays out of git, code in a
package under ``src/``, models and reports beside it) and adds what
octostore's workflow needs: a ``.gitignore`` for the data and MLflow's local
database, a ``.gitattributes`` that sends model files through Git LFS, an
example training script that logs with MLflow's defaults, environment files,
and a README that explains the loop (train, look, commit, share, reproduce).

Existing files are never overwritten: they are reported as kept.  ``git
init`` runs only when the folder is not already inside a work tree.

The training environment needs MLflow, the project's own dependencies and
octostore's capture plugin, not octostore itself: ``requirements.txt`` lists
no ``octostore`` (no index serves a project of that name), and
:func:`next_steps` gives the commands that set the project up and log a
first run (``octostore capture install`` puts the plugin in).  The README
names where collaborators get octostore when the caller knows a source that
exists (:mod:`octostored.installsource`).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess

from ..atomicfile import atomic_write


class ScaffoldError(Exception):
    pass


def package_name(folder: str) -> str:
    """A Python package name from a folder name (``Wine Quality`` -> ``wine_quality``)."""
    name = re.sub(r"[^0-9a-zA-Z]+", "_", os.path.basename(os.path.abspath(folder))).strip("_")
    name = name.lower() or "project"
    return f"p_{name}" if name[0].isdigit() else name


def files(package: str, project: str, octostore: str | None = None) -> dict[str, str]:
    """Each file's text by its path; ``octostore``: the requirement collaborators install."""
    get = (GET_OCTOSTORE.format(spec=shlex.quote(octostore)) if octostore
           else GET_OCTOSTORE_UNKNOWN)
    return {
        "README.md": README.format(project=project, package=package, get_octostore=get),
        ".gitignore": GITIGNORE,
        ".gitattributes": GITATTRIBUTES,
        "pyproject.toml": PYPROJECT.format(project=project.lower().replace("_", "-"),
                                           package=package),
        "requirements.txt": REQUIREMENTS,
        "data/raw/.gitkeep": "",
        "data/processed/.gitkeep": "",
        "notebooks/.gitkeep": "",
        "models/.gitkeep": "",
        "reports/figures/.gitkeep": "",
        f"src/{package}/__init__.py": f'"""{project}."""\n',
        f"src/{package}/train.py": TRAIN.format(package=package),
    }


def scaffold(folder: str, package: str | None = None, git_init: bool = True,
             octostore: str | None = None) -> dict[str, object]:
    """Create the project in ``folder`` (made if missing); return what was created and kept.

    ``octostore`` is the requirement the README tells collaborators to install (a source
    that exists, e.g. ``octostore @ git+https://...@COMMIT``); None: the README says to get
    it from whoever set the project up.  ``fresh`` in the result: the folder held nothing
    and ``git init`` made its repo (so the whole folder can go into a first commit).

    Raises:
        ScaffoldError: the folder cannot be created, or the package name is not valid.
    """
    package = package or package_name(folder)
    if not package.isidentifier():
        raise ScaffoldError(f"{package!r} is not a valid Python package name; pass "
                            "--package with letters, digits and underscores")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise ScaffoldError(f"cannot create {folder} ({exc.strerror})") from None
    created, skipped = [], []
    project = os.path.basename(os.path.abspath(folder))
    was_empty = not os.listdir(folder)
    for rel, text in files(package, project, octostore).items():
        path = os.path.join(folder, rel)
        if os.path.exists(path):
            skipped.append(rel)
            continue
        try:
            atomic_write(path, text.encode("utf-8"), 0o755 if rel.endswith("train.py") else 0o644)
        except OSError as exc:
            raise ScaffoldError(f"cannot write {rel} ({exc.strerror})") from None
        created.append(rel)
    ran_git = False
    if git_init and not _in_work_tree(folder):
        proc = subprocess.run(["git", "init", "-q", folder], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ScaffoldError(f"git init failed: {proc.stderr.strip()}; install git, or pass "
                                "--no-git")
        ran_git = True
    return {"root": os.path.abspath(folder), "package": package, "created": created,
            "skipped": skipped, "git_init": ran_git, "fresh": ran_git and was_empty}


def next_steps(package: str, fresh: bool, uv: str | None, octostore: str) -> list[str]:
    """The shell commands, run in order in the project's folder, from a new project to a
    committed run: make the training environment (with ``uv`` when given: the uv binary as a
    shell word, else ``python3 -m venv`` and pip), install the requirements and the capture
    plugin (``octostore``: the CLI as shell words), train once, commit the run.  ``fresh``
    adds a first git commit of the scaffold (the run then records a commit to come back to).
    """
    steps = []
    if fresh:
        steps.append("git add -A && git commit -q -m 'Project layout from octostore init'")
    if uv:
        steps += [f"{uv} venv .venv",
                  f"{uv} pip install --python .venv/bin/python -r requirements.txt"]
    else:
        steps += ["python3 -m venv .venv",
                  ".venv/bin/python -m pip install -r requirements.txt"]
    steps += [f"{octostore} capture install --python .venv/bin/python",
              f".venv/bin/python src/{package}/train.py --alpha 0.001",
              f"{octostore} commit"]
    return steps


def _in_work_tree(folder: str) -> bool:
    try:
        proc = subprocess.run(["git", "-C", folder, "rev-parse", "--is-inside-work-tree"],
                              capture_output=True, text=True)
    except OSError:
        return False
    return proc.returncode == 0 and proc.stdout.strip() == "true"


README = """\
# {project}

An ML project tracked with [MLflow](https://mlflow.org) and shared with
octostore: runs are committed to git next to the code
that produced them, so anyone who clones the repo sees them, and can re-run
any of them in the environment it had.

## Layout

```
data/raw/          original, immutable data (not in git)
data/processed/    data ready for modelling (not in git)
notebooks/         exploration; name them 01-initials-topic.ipynb
src/{package}/     the package: training code lives here
models/            trained models (large files go through Git LFS)
reports/figures/   figures for reports
.octostore/        committed runs, environment locks and code patches (written by octostore)
```

## The loop

1. **Set up** (once): the training environment has MLflow, this project's
   requirements and octostore's capture plugin (octostore itself stays outside it):

       python3 -m venv .venv && .venv/bin/python -m pip install -r requirements.txt
       octostore capture install --python .venv/bin/python

   (`uv venv .venv && uv pip install --python .venv/bin/python -r requirements.txt` is
   quicker), and `git lfs install` if you use Git LFS. {get_octostore}
2. **Train**: `.venv/bin/python src/{package}/train.py --alpha 0.001`. MLflow logs to `mlflow.db`
   (and `mlruns/` for artifacts) in this folder; both stay out of git. Where the octostore
   plugin is installed, every run also records its environment lock, command line and
   uncommitted changes; elsewhere, run `octostore run -- python src/{package}/train.py`.
3. **Look**: `octostore runs`, `octostore-tui`, or the VS Code extension.
4. **Commit**: `octostore commit` puts the new runs (params, metrics with their
   histories, tags, small artifacts) into one git commit under `.octostore/runs/`,
   with their environment locks and patches. It commits nothing else of yours:
   your staged and unstaged changes stay as they are. `git push` (or
   `octostore commit --push`) shares them.
5. **Share**: a colleague who clones the repo sees every committed run with
   `octostore runs`, and MLflow reads them too:
   `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri .octostore/runs`.
6. **Reproduce**: `octostore reproduce RUN_ID` re-runs a run in its environment.

Artifacts over 10 MB go through Git LFS when it is installed (otherwise they
are listed, with their sha256, and left out); change the limit in
`pyproject.toml` under `[tool.octostore.commit]`.
"""

GITIGNORE = """\
# Data stays out of git (the folders are kept by their .gitkeep files).
/data/raw/*
/data/processed/*
!/data/**/.gitkeep

# MLflow's local store: `octostore commit` exports runs to .octostore/runs instead.
/mlflow.db
/mlflow.db-*
/mlruns/

# Python
__pycache__/
*.py[cod]
.venv/
*.egg-info/
.ipynb_checkpoints/
.env
"""

GITATTRIBUTES = """\
# Model and data files go through Git LFS (https://git-lfs.com): run `git lfs install` once.
*.pkl filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
# Notebooks diff as text.
*.ipynb diff
"""

PYPROJECT = """\
[project]
name = "{project}"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = [
    "mlflow>=3.7",
    "scikit-learn>=1.5",
]

[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["src/{package}"]

[tool.octostore.commit]
# Artifacts above this size go through Git LFS (or are left out without it).
max_artifact_mb = 10
"""

REQUIREMENTS = """\
# The training environment. octostore is not one of its packages: its capture plugin goes in
# with `octostore capture install --python .venv/bin/python` (see README.md).
mlflow>=3.7
scikit-learn>=1.5
"""

GET_OCTOSTORE = """octostore itself (its CLI,
   dashboard and daemon) installs with `pip install {spec}`
   (or `uv tool install {spec}`)."""

GET_OCTOSTORE_UNKNOWN = """Get octostore itself (its CLI,
   dashboard and daemon) where whoever set up this project got it."""

TRAIN = '''\
"""Train a linear model on scikit-learn's diabetes data and log the run with MLflow.

Run from the project's top folder: ``python src/{package}/train.py --alpha 0.001``.
MLflow's defaults apply (``mlflow.db`` here); validation RMSE is logged at every
epoch, so each run has a learning curve.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import mlflow
import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import SGDRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--alpha", type=float, default=0.001, help="regularisation strength")
    ap.add_argument("--l1-ratio", type=float, default=0.15, help="elastic-net mixing")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--experiment", default="{package}")
    args = ap.parse_args(argv)

    X, y = load_diabetes(return_X_y=True)
    X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.25, random_state=42)
    scaler = StandardScaler().fit(X_train)
    X_train, X_val = scaler.transform(X_train), scaler.transform(X_val)
    model = SGDRegressor(penalty="elasticnet", alpha=args.alpha, l1_ratio=args.l1_ratio,
                         learning_rate="invscaling", random_state=42)

    mlflow.set_experiment(args.experiment)
    with mlflow.start_run():
        mlflow.log_params({{"alpha": args.alpha, "l1_ratio": args.l1_ratio,
                           "epochs": args.epochs, "model": "sgd-elasticnet"}})
        for epoch in range(args.epochs):
            model.partial_fit(X_train, y_train)
            rmse = float(np.sqrt(mean_squared_error(y_val, model.predict(X_val))))
            mlflow.log_metric("val_rmse", rmse, step=epoch)
        pred = model.predict(X_val)
        mlflow.log_metrics({{"val_mae": float(mean_absolute_error(y_val, pred)),
                            "val_r2": float(r2_score(y_val, pred))}})
        with tempfile.TemporaryDirectory() as tmp:  # the run's copy is the one that counts
            path = os.path.join(tmp, "coefficients.json")
            with open(path, "w") as f:
                json.dump({{"coef": model.coef_.tolist(),
                           "intercept": model.intercept_.tolist()}}, f)
            mlflow.log_artifact(path)


if __name__ == "__main__":
    main()
'''
