"""``octostore import``: copy runs from any MLflow store into the repo's own store.

* :mod:`.where` (the CLI's side, no MLflow): what SOURCE and the destination are, the
  Python that has MLflow, and the worker's environment.
* :mod:`.spawn` (the CLI's side): runs the worker, shows its progress, returns its summary.
* :mod:`.worker` and :mod:`.copier` (MLflow's side, standard library + MLflow only): run as
  ``python -m octostored.importer.worker``; read the source through ``MlflowClient`` and
  write the destination through its ``SqlAlchemyStore``.
"""
