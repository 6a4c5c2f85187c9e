"""``octostore ci init``: a GitHub Actions workflow that reproduces a run on a runner.

The workflow (``.github/workflows/octostore-reproduce.yml``) is started by
hand (``workflow_dispatch``) with a run id, optional ``KEY=VALUE``
overrides, a tolerance and a branch to commit the new run to.  It checks
the repository out with its whole history (the run's commit must be there)
and its LFS files, reads the run's Python version from the committed run
(``.octostore/runs/*/<run>/tags/octostore.python``), sets that Python up,
installs uv and octostore (from the source :mod:`octostored.installsource` names:
never a bare ``octostore``, which no index serves), runs ``octostore reproduce`` in the
checkout, and
then commits the new run locally with ``octostore commit`` (which writes it
in MLflow's file-store layout with its environment lock) and uploads that
folder with the comparison as a build artifact; when a branch is given the
commit is pushed there.  The last step fails the build unless the verdict is
``reproduced`` (or the comparison finished, with overrides).

The reproduce step passes ``--yes``: the command the run recorded runs
without a question, in the runner's sandbox (a fresh VM per job); the JSON
result still holds it (``command``).  Each ``overrides`` pair goes to
``--set`` as one word, and a key that the run's entry point does not take is
refused, never handed to a shell.

Shaped so: inputs reach shell scripts only through ``env:`` (never
``${{ }}`` inside ``run:``, which would let an input inject shell code); the
expressions used are few and simple, so the tests can run the workflow's own
shell steps locally in a fresh clone (``tests/test_ci_workflow.py``), and
``actionlint`` checks the file.
"""

from __future__ import annotations

import os

from ..atomicfile import atomic_write

WORKFLOW_PATH = os.path.join(".github", "workflows", "octostore-reproduce.yml")
DEFAULT_PYTHON = "3.11"


class WorkflowExists(Exception):
    pass


TEMPLATE = """\
# Reproduce an MLflow run of this repository on a GitHub runner, with octostore.
# Written by `octostore ci init`. Start it from the Actions tab ("Run workflow") or with
#   gh workflow run octostore-reproduce.yml -f run_id=RUN_ID [-f overrides="lr=0.1 seed=2"]
# The run must be committed (`octostore commit`) and pushed, with the commit it was made from.
name: octostore reproduce

on:
  workflow_dispatch:
    inputs:
      run_id:
        description: The MLflow run id to reproduce (a run committed with octostore commit)
        required: true
        type: string
      overrides:
        description: Parameter changes, space-separated KEY=VALUE pairs (empty for none)
        required: false
        type: string
        default: ""
      tolerance:
        description: Relative tolerance for the metrics (empty for the project's default)
        required: false
        type: string
        default: ""
      commit_to_branch:
        description: Commit the new run to this branch (empty to only upload it)
        required: false
        type: string
        default: ""

permissions:
  contents: write

jobs:
  reproduce:
    runs-on: ubuntu-latest
    env:
      RUN_ID: ${{{{ inputs.run_id }}}}
      OVERRIDES: ${{{{ inputs.overrides }}}}
      TOLERANCE: ${{{{ inputs.tolerance }}}}
      COMMIT_BRANCH: ${{{{ inputs.commit_to_branch }}}}
      OCTOSTORE_PACKAGE: {package}
      DEFAULT_PYTHON: "{python}"
      PYTHONUNBUFFERED: "1"
    steps:
      - name: Check out the repository (whole history, LFS files)
        uses: actions/checkout@v5
        with:
          fetch-depth: 0
          lfs: true

      - name: Find the run's Python version
        id: run
        run: |
          version=""
          for tag in .octostore/runs/*/"$RUN_ID"/tags/octostore.python; do
            if [ -f "$tag" ]; then
              version=$(cat "$tag")
              break
            fi
          done
          if [ -z "$version" ] && [ -f .python-version ]; then
            version=$(head -n 1 .python-version)
          fi
          echo "Python ${{version:-$DEFAULT_PYTHON}} for run $RUN_ID"
          echo "python-version=${{version:-$DEFAULT_PYTHON}}" >> "$GITHUB_OUTPUT"

      - name: Set up the run's Python
        uses: actions/setup-python@v6
        with:
          python-version: ${{{{ steps.run.outputs.python-version }}}}

      - name: Cache built environments
        uses: actions/cache@v5
        with:
          path: |
            ~/.cache/uv
            ~/.cache/octostore/reproduce/envs
          key: octostore-envs-${{{{ runner.os }}}}-${{{{ hashFiles('.octostore/envs/*.json') }}}}
          restore-keys: octostore-envs-${{{{ runner.os }}}}-

      - name: Install uv and octostore
        run: |
          python -m pip install --disable-pip-version-check uv
          uv pip install --python "$(command -v python)" "$OCTOSTORE_PACKAGE"
          octostore --help > /dev/null

      - name: Reproduce the run
        id: reproduce
        run: |
          args=()
          read -r -a pairs <<< "$OVERRIDES"
          for kv in "${{pairs[@]}}"; do
            args+=(--set "$kv")
          done
          if [ -n "$TOLERANCE" ]; then
            args+=(--tolerance "$TOLERANCE")
          fi
          set +e
          octostore reproduce "$RUN_ID" "${{args[@]}}" --yes --json > octostore-reproduce.json
          code=$?
          set -e
          echo "exit-code=$code" >> "$GITHUB_OUTPUT"
          new_run=$(python -c 'import json; r = json.load(open("octostore-reproduce.json"))
          print(r.get("new_run_id") or "")' || true)
          echo "new-run-id=$new_run" >> "$GITHUB_OUTPUT"
          cat octostore-reproduce.json

      - name: Commit the new run
        id: collect
        if: always() && steps.reproduce.outputs.new-run-id != ''
        env:
          NEW_RUN_ID: ${{{{ steps.reproduce.outputs.new-run-id }}}}
        run: |
          git config user.name "octostore CI"
          git config user.email "octostore-ci@users.noreply.github.com"
          if [ -n "$COMMIT_BRANCH" ]; then
            if git ls-remote --exit-code --heads origin "$COMMIT_BRANCH" > /dev/null; then
              git fetch origin "$COMMIT_BRANCH"
              git checkout -B "$COMMIT_BRANCH" FETCH_HEAD
            else
              git checkout -b "$COMMIT_BRANCH"
            fi
          fi
          octostore commit "$NEW_RUN_ID" -m "Reproduce run $RUN_ID on CI"
          mkdir -p octostore-new-run
          for folder in .octostore/runs/*/"$NEW_RUN_ID"; do
            cp -R "$folder" octostore-new-run/
          done

      - name: Upload the new run and the comparison
        if: always()
        uses: actions/upload-artifact@v6
        with:
          name: octostore-reproduce-${{{{ inputs.run_id }}}}
          path: |
            octostore-reproduce.json
            octostore-new-run/
          if-no-files-found: warn

      - name: Push the new run
        if: inputs.commit_to_branch != '' && steps.collect.outcome == 'success'
        run: git push origin "HEAD:refs/heads/$COMMIT_BRANCH"

      - name: Stop the octostore daemon
        if: always()
        run: octostore daemon stop || true

      - name: Verdict
        if: always()
        env:
          EXIT_CODE: ${{{{ steps.reproduce.outputs.exit-code }}}}
        run: |
          python - <<'PY' >> "${{GITHUB_STEP_SUMMARY:-/dev/null}}" || true
          import json
          r = json.load(open("octostore-reproduce.json"))
          print(f"## octostore reproduce {{r.get('run_id')}}: {{r.get('verdict')}}")
          if r.get("failed"):
              print(f"Failed in phase {{r['failed'].get('phase')}}: {{r['failed'].get('message')}}")
          rows = r.get("metrics") or []
          if rows:
              print("| metric | original | reproduced | status |")
              print("|---|---|---|---|")
              for m in rows:
                  cells = (m["key"], m["original"], m["reproduced"], m["status"])
                  print("| " + " | ".join(str(c) for c in cells) + " |")
          if r.get("new_run_id"):
              print(f"New run: {{r['new_run_id']}}")
          PY
          exit "${{EXIT_CODE:-4}}"
"""


def render(package: str, python: str | None = None) -> str:
    """The workflow's text, installing octostore from ``package`` (a pip requirement)."""
    pkg = package.strip()
    if any(c in pkg for c in "\n'\"$`\\") or not pkg:
        raise ValueError(f"the package spec {pkg!r} cannot go into the workflow as it is")
    py = python or DEFAULT_PYTHON
    if not all(c.isdigit() or c == "." for c in py):
        raise ValueError(f"{py!r} is not a Python version such as 3.11")
    needs_quotes = any(c in pkg for c in ":#{}[],&*?|<>=!%@ ")
    return TEMPLATE.format(package=f'"{pkg}"' if needs_quotes else pkg, python=py)


def write_workflow(root: str, package: str, python: str | None = None,
                   force: bool = False) -> dict[str, str]:
    """Write the workflow under ``root``, installing octostore from ``package``; refuse to
    overwrite another one unless ``force``.

    Raises:
        WorkflowExists: the file exists with other content and ``force`` is false.
        ValueError: ``package`` or ``python`` cannot be written into the workflow.
    """
    text = render(package, python)
    path = os.path.join(root, WORKFLOW_PATH)
    if os.path.exists(path) and not force:
        with open(path, encoding="utf-8") as f:
            if f.read() != text:
                raise WorkflowExists(f"{WORKFLOW_PATH} exists and differs; pass --force to "
                                     "overwrite it")
    atomic_write(path, text.encode("utf-8"))
    return {"path": path, "relpath": WORKFLOW_PATH}
