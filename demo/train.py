"""Train a random forest that predicts white-wine quality, and log the run to MLflow.

This is the octostore demo project: a deliberately small, ordinary MLflow training
script, so that octostore has real runs (params, metrics, a training curve, an
artifact) to index, compare, commit and reproduce.

Run it from this folder::

    python train.py --n-estimators 200 --max-depth 6

It uses MLflow's *default* tracking store on purpose (no tracking URI is set): since
MLflow 3.7 that is ``sqlite:///mlflow.db`` in the working directory, with artifacts
under ``./mlruns``, which is exactly the layout octostore discovers in a repo.

What gets logged, in the experiment "wine-quality":

* params: ``n_estimators``, ``max_depth``, ``min_samples_leaf``, ``seed``;
* metrics on the held-out test split: ``rmse``, ``mae``, ``r2``;
* a training curve, ``val_rmse`` at steps 10, 20, ..., n_estimators: the validation
  RMSE of the forest made of the first *step* trees (a forest's prediction is the
  mean of its trees', so every prefix is a smaller forest, for free);
* ``feature_importances.csv``: the forest's impurity-based importances.

Given the same seed and data, a run's numbers are identical (the split and the forest
both take their randomness from ``--seed``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data" / "wine-quality.csv"
TARGET = "quality"
EXPERIMENT = "wine-quality"
CURVE_EVERY = 10  # trees between two points of the training curve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-estimators", type=int, default=100, help="number of trees")
    parser.add_argument(
        "--max-depth", type=int, default=8, help="maximum tree depth (0 = unlimited)"
    )
    parser.add_argument("--min-samples-leaf", type=int, default=1, help="minimum samples per leaf")
    parser.add_argument("--seed", type=int, default=42, help="seed for the split and the forest")
    args = parser.parse_args(argv)
    if args.n_estimators < 1:
        parser.error("--n-estimators must be at least 1")
    if args.max_depth < 0:
        parser.error("--max-depth must be 0 (unlimited) or more")
    if args.min_samples_leaf < 1:
        parser.error("--min-samples-leaf must be at least 1")
    return args


def curve_steps(n_estimators: int) -> list[int]:
    """Tree counts at which the training curve is sampled; always ends at n_estimators."""
    steps = list(range(CURVE_EVERY, n_estimators + 1, CURVE_EVERY))
    if not steps or steps[-1] != n_estimators:
        steps.append(n_estimators)
    return steps


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t0 = time.perf_counter()

    # Heavy imports after argument parsing so that --help stays instant.
    import mlflow
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split

    data = pd.read_csv(DATA)
    X = data.drop(columns=[TARGET])
    y = data[TARGET].astype(float)
    # 60/20/20 train/validation/test. The validation split drives the training curve;
    # the test split is only touched once, for the final metrics.
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=0.2, random_state=args.seed)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=0.25, random_state=args.seed
    )
    print(
        f"loaded {len(data)} wines: {len(X_train)} train, {len(X_val)} validation, "
        f"{len(X_test)} test",
        flush=True,
    )

    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run() as run:
        mlflow.log_params(
            {
                "n_estimators": args.n_estimators,
                "max_depth": args.max_depth,
                "min_samples_leaf": args.min_samples_leaf,
                "seed": args.seed,
            }
        )
        print(
            f"run {run.info.run_id} ({run.info.run_name}): fitting {args.n_estimators} trees, "
            f"max_depth={args.max_depth}, min_samples_leaf={args.min_samples_leaf}, "
            f"seed={args.seed}",
            flush=True,
        )

        t_fit = time.perf_counter()
        # n_jobs does not change the fitted trees: each tree's randomness comes from
        # random_state, whatever worker grows it.
        model = RandomForestRegressor(
            n_estimators=args.n_estimators,
            max_depth=args.max_depth or None,
            min_samples_leaf=args.min_samples_leaf,
            random_state=args.seed,
            n_jobs=2,
        )
        model.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - t_fit
        # Predicting in parallel sums the trees' outputs in whatever order the threads finish,
        # which moves the last bit of the metrics; one thread keeps reruns bit-identical.
        model.set_params(n_jobs=1)

        # Training curve: one prediction per tree on the validation set, then running
        # means give the forest of the first k trees for every k, without refitting.
        X_val_np = X_val.to_numpy(dtype=np.float32)
        per_tree = np.stack([tree.predict(X_val_np) for tree in model.estimators_])
        running_mean = np.cumsum(per_tree, axis=0) / np.arange(1, len(per_tree) + 1)[:, None]
        y_val_np = y_val.to_numpy()
        for step in curve_steps(args.n_estimators):
            val_rmse = float(np.sqrt(np.mean((running_mean[step - 1] - y_val_np) ** 2)))
            mlflow.log_metric("val_rmse", val_rmse, step=step)
            print(f"  trees {step:>4}: val_rmse={val_rmse:.4f}", flush=True)

        predictions = model.predict(X_test)
        metrics = {
            "rmse": float(np.sqrt(mean_squared_error(y_test, predictions))),
            "mae": float(mean_absolute_error(y_test, predictions)),
            "r2": float(r2_score(y_test, predictions)),
        }
        mlflow.log_metrics(metrics)

        importances = sorted(
            zip(X.columns, model.feature_importances_, strict=True),
            key=lambda item: item[1],
            reverse=True,
        )
        csv = "feature,importance\n" + "".join(
            f"{name},{value:.6f}\n" for name, value in importances
        )
        mlflow.log_text(csv, "feature_importances.csv")

        print(
            f"test: rmse={metrics['rmse']:.4f} mae={metrics['mae']:.4f} r2={metrics['r2']:.4f} "
            f"(fit {fit_seconds:.2f} s, total {time.perf_counter() - t0:.2f} s)",
            flush=True,
        )
        print(f"logged run {run.info.run_id} to experiment '{EXPERIMENT}'", flush=True)


if __name__ == "__main__":
    main()
