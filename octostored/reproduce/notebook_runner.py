"""Executes a notebook run with nbclient, in the reproduced environment's Python.

``<env python> notebook_runner.py NOTEBOOK OUTPUT PARAMS_JSON``: reads
``NOTEBOOK``, injects ``--set`` values papermill-style (a cell right after the
one tagged ``parameters``, assigning each value: ``ast.literal_eval`` when it
parses, else the string), executes every cell in a kernel of this
interpreter with the notebook's folder as working folder, prints each cell's
output as it completes (the job streams it), and writes the executed
notebook to ``OUTPUT`` (kept as an artifact), also when a cell fails.

The kernel is this interpreter, whatever kernels the machine has installed: a
kernel spec of its own (``octostore-python``: ``sys.executable -m
ipykernel_launcher``) in a temporary folder put first on ``JUPYTER_PATH``, so
a user's ``python3`` kernel pointing at another Python cannot run the cells.

Self-contained (standard library, nbformat, nbclient): octostore is not
installed in the reproduced environment.  Exit codes: 0 done, 1 a cell
failed, 3 parameters asked for but the notebook has no ``parameters`` cell.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import sys
import tempfile

KERNEL = "octostore-python"


def _value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def inject(nb, params: dict[str, str]) -> bool:  # noqa: ANN001
    """Insert the parameter cell after the ``parameters`` cell; False when there is none."""
    import nbformat

    for i, cell in enumerate(nb.cells):
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            source = "# Parameters set by octostore reproduce\n" + "".join(
                f"{k} = {_value(v)!r}\n" for k, v in params.items())
            new = nbformat.v4.new_code_cell(source)
            new.metadata["tags"] = ["injected-parameters"]
            nb.cells.insert(i + 1, new)
            return True
    return False


def _print_outputs(cell) -> None:  # noqa: ANN001
    for out in cell.get("outputs", []):
        kind = out.get("output_type")
        if kind == "stream":
            sys.stdout.write(out.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            text = out.get("data", {}).get("text/plain")
            if text:
                sys.stdout.write(text + "\n")
        elif kind == "error":
            sys.stdout.write("\n".join(out.get("traceback", [])) + "\n")
    sys.stdout.flush()


def own_kernel() -> str:
    """A kernel spec for this interpreter, first on ``JUPYTER_PATH``; its folder."""
    folder = tempfile.mkdtemp(prefix="octostore-kernel-")
    spec = os.path.join(folder, "kernels", KERNEL)
    os.makedirs(spec)
    with open(os.path.join(spec, "kernel.json"), "w", encoding="utf-8") as f:
        json.dump({"argv": [sys.executable, "-m", "ipykernel_launcher", "-f",
                            "{connection_file}"],
                   "display_name": "Python (octostore reproduce)", "language": "python"}, f)
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = folder + (os.pathsep + old if old else "")
    return folder


def main(argv: list[str]) -> int:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path, output, params_json = argv[1], argv[2], argv[3] if len(argv) > 3 else "{}"
    params = json.loads(params_json)
    nb = nbformat.read(path, as_version=4)
    if params and not inject(nb, params):
        print("octostore: the notebook has no cell tagged 'parameters'; its parameters cannot "
              "be set from outside", flush=True)
        return 3
    code_cells = sum(1 for c in nb.cells if c.cell_type == "code")
    done = [0]

    def on_cell_executed(cell, cell_index, execute_reply):  # noqa: ANN001, ANN202
        done[0] += 1
        print(f"--- cell {cell_index} ({done[0]}/{code_cells}) ---", flush=True)
        _print_outputs(cell)

    folder = os.path.dirname(os.path.abspath(path))
    kernels = own_kernel()
    client = NotebookClient(nb, timeout=None, kernel_name=KERNEL,
                            resources={"metadata": {"path": folder}},
                            on_cell_executed=on_cell_executed)
    code = 0
    try:
        client.execute()
    except CellExecutionError as exc:
        print(str(exc), flush=True)
        code = 1
    finally:
        nbformat.write(nb, output)
        shutil.rmtree(kernels, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
