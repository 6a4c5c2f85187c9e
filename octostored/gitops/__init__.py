"""Git work: committing runs (:mod:`.commit`, :mod:`.contents`, :mod:`.journal`), their
file-store export (:mod:`.export`), choosing them and wording the message (:mod:`.plan`),
the data the user names with ``--data`` and the inputs left out (:mod:`.data`), and
``octostore init`` (:mod:`.scaffold`).

A repo is untrusted input, so a commit copies nothing from outside the work tree
(:mod:`.sourcepaths`), replays only journals this user's octostore signed
(:mod:`.journalkey`), keeps the user's own files in a run folder it exports again
(:mod:`.userfiles`), runs the repo's pre-commit and commit-msg hooks on exactly what
it commits (:mod:`.hooks`), and counts a run as committed only when it is in HEAD's
tree (:func:`.git.head_run_ids`).

Where committed runs live, and why: ``.octostore/runs/``, in MLflow's file-store
layout, for runs from *either* backend (a file store the user logs to is exported
too, never committed in place):

* not ``./mlruns``: when ``./mlruns`` holds experiments, MLflow >= 3.7 with default
  settings switches from ``sqlite:///mlflow.db`` to the file store, and MLflow >= 3.13
  refuses the file store unless ``MLFLOW_ALLOW_FILE_STORE`` is set, so a colleague's
  next ``python train.py`` would fail after cloning.  ``.octostore/runs`` is invisible
  to that rule, and the SQLite database is never committed;
* a file store, because it is text files, one folder per run (two people's runs never
  touch the same file), readable by MLflow itself
  (``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri .octostore/runs``, or
  ``mlflow migrate-filestore`` into a database) and by octostore's own reader;
* exported rather than committed in place, so every committed run gets the same
  treatment: folders git would drop are kept (see :mod:`.export`), artifacts above
  the size limit go through Git LFS or are listed and left out, and artifact URIs are
  portable across clones.

Everything here runs on a worker thread of the daemon (or in a CLI process), one
commit at a time per repo (a lock in ``<git-dir>/octostore``), through plain ``git``
subprocesses (:mod:`.git`); nothing runs at import time.  The user's work tree and
index are touched only by an explicit commit, and then only at octostore's own paths
(and at the data files ``--data`` names, plus their Git LFS lines in ``.gitattributes``).
"""
