"""What the notebook tests share: running a notebook with papermill on small parameters, and
reading what it showed. The tests are split in two files (MovieLens, catalogs) so that the two
test processes can take one each."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["01_offline_evaluation", "02_similar_items", "03_cold_start", "04_catalog_curation"]
FASHION = Path(__file__).resolve().parents[2] / "shared" / "data" / "fashion-products" / "catalog.csv"


def run(name: str, tmp_path: Path, **parameters) -> nbformat.NotebookNode:
    import papermill

    out = tmp_path / f"{name}.ipynb"  # the executed notebook, with its plots, for a look afterwards
    papermill.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(out), parameters=parameters,
                               kernel_name="python3", cwd=str(NOTEBOOKS), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    return nb


def images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def summary(nb) -> dict:
    """The dict the notebook's last cell shows."""
    shown = [o for o in nb.cells[-1].outputs if o.output_type == "execute_result"]
    return ast.literal_eval(shown[0]["data"]["text/plain"])


def state_of(session_dir: Path) -> str:
    """The notebooks' state dir: the session's, so that they share its embedding cache."""
    return str(session_dir / "state")
