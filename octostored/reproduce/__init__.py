"""Reproduce a run: same code, same environment, same (or changed) parameters.

A reproduction is a job (:mod:`octostored.jobs`) in five phases, each in its
own module:

1. **resolve** (:mod:`.plan`): the run's commit, patch, entry point
   (:mod:`.overrides` applies ``--set``), environment source and target store;
2. **checkout** (:mod:`.worktree`): a ``git worktree`` in octostore's cache,
   the patch applied; the user's tree, index and branches are never touched;
3. **environment** (:mod:`.envspec` decides what, :mod:`.envbuild` builds it
   with uv or venv + pip, cached by the lock's hash);
4. **run**: the entry point in that environment, logging to the user's
   store as a new run tagged ``octostore.reproduces``; MLflow-side work runs
   in :mod:`.mlflow_helper` inside the reproduced environment (the daemon never
   imports MLflow), notebooks in :mod:`.notebook_runner`;
5. **compare** (:mod:`.compare`): metric by metric, and the verdict.

:mod:`.job` strings the phases together; :mod:`.ci` writes the GitHub Actions
workflow that does the same on a runner.  Processes go through :mod:`.proc`
(own process group, streamed output, killed on cancel).
"""
