"""The book: committed notebooks are clean full-mode executions, the runner tidies, the HTML builds
with -W and bundles MathJax (the pages themselves are read in Chromium by tests/test_browser.py).

The build test takes ~10-30 s.
"""

from __future__ import annotations

import ast
import base64
import io
import os
import re
import subprocess
import sys

import nbformat
import pytest

from tsode.book import runner as book

ROOT = book.ROOT
CHAPTERS = book.chapters()
CHAPTER_IDS = [p.stem for p in CHAPTERS]


def _read(path):
    return nbformat.read(str(path), as_version=4)


# ------------------------------------------------------------------------------------------
# static checks of the committed notebooks
# ------------------------------------------------------------------------------------------
def test_four_chapters_in_the_toc():
    toc = (ROOT / "_toc.yml").read_text()
    listed = re.findall(r"file:\s*book/(\d\d_\w+)", toc)
    assert listed == CHAPTER_IDS
    assert len(CHAPTERS) == 4


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_notebook_executed_in_full_mode(path):
    nb = _read(path)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1, "executed by the runner: one injected-parameters cell"
    cell = injected[0]
    assert cell.id == book.INJECTED_ID
    assert book.INJECTED_TAG in cell.metadata["tags"]
    assert nb.cells.index(cell) == nb.cells.index(params[0]) + 1
    values = {}
    for node in ast.parse(cell.source).body:
        if isinstance(node, ast.Assign):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    assert values.get("mode") == "full", f"committed outputs must come from the full mode: {values}"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_notebook_outputs_are_clean(path):
    nb = _read(path)
    assert "papermill" not in nb.metadata
    counts = []
    for cell in nb.cells:
        assert "papermill" not in cell.metadata and "execution" not in cell.metadata, cell.id
        if cell.cell_type != "code":
            continue
        assert cell.execution_count is not None, f"cell {cell.id} was not executed"
        counts.append(cell.execution_count)
        for out in cell.outputs:
            assert out.output_type != "error", f"{cell.id}: {out.get('ename')}: {out.get('evalue')}"
            if out.output_type == "stream":
                assert out.name == "stdout", f"{cell.id} wrote to stderr: {out.text[:200]!r}"
            text = out.get("data", {}).get("text/plain", "") if "data" in out else ""
            assert "<matplotlib." not in text and "Text(" not in text, (
                f"{cell.id} displays a matplotlib artist; end the cell with plt.show()")
            png = out.get("data", {}).get("image/png") if "data" in out else None
            if png:
                assert b"Matplotlib version" not in base64.b64decode(png), cell.id
    assert counts == list(range(1, len(counts) + 1)), "cells executed once, in order"


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_checked_cells_print_numbers(path):
    nb = _read(path)
    checked = [c for c in nb.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked, "every chapter has cells whose printed numbers nbval compares"
    for cell in checked:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        assert re.search(r"\d", text), f"{cell.id} prints no number"
        assert all(o.output_type == "stream" for o in cell.outputs), (
            f"{cell.id}: checked cells print text only (no display data, no glue)")


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_runner_output_is_a_fixed_point_of_tidy(path):
    nb = _read(path)
    before = nbformat.writes(nb)
    assert nbformat.writes(book.tidy(nb)) == before
    assert (path.read_text() == before + "\n") or (path.read_text() == before)


# ------------------------------------------------------------------------------------------
# the runner
# ------------------------------------------------------------------------------------------
def _png_with_text():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def test_strip_png_text_removes_software_chunk():
    raw = _png_with_text()
    assert b"Matplotlib version" in raw
    clean = book._strip_png_text(raw)
    assert b"Matplotlib version" not in clean and b"tEXt" not in clean
    assert clean.startswith(b"\x89PNG") and clean.endswith(raw[-12:])
    from PIL import Image  # matplotlib depends on pillow

    assert Image.open(io.BytesIO(clean)).size == Image.open(io.BytesIO(raw)).size


def test_tidy_fixes_injected_cell_and_strips_metadata():
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell("mode = 'full'", metadata={"tags": ["parameters"]})
    inj = nbformat.v4.new_code_cell("mode = 'fast'", metadata={
        "tags": ["injected-parameters"], "papermill": {"duration": 1.0},
        "execution": {"iopub.execute_input": "2026-01-01"}})
    img = nbformat.v4.new_output("display_data", data={
        "image/png": base64.b64encode(_png_with_text()).decode()})
    fig = nbformat.v4.new_code_cell("plot()", outputs=[img])
    nb.cells = [p, inj, fig]
    nb.metadata["papermill"] = {"start_time": "now"}
    book.tidy(nb)
    assert "papermill" not in nb.metadata
    assert inj.id == "injected-parameters" and inj.metadata["tags"] == ["injected-parameters", "remove-cell"]
    assert "papermill" not in inj.metadata and "execution" not in inj.metadata
    assert b"Matplotlib" not in base64.b64decode(fig.outputs[0]["data"]["image/png"])
    assert book.problems(nb) == []
    nb.cells[2].outputs.append(nbformat.v4.new_output("stream", name="stderr", text="warning"))
    assert book.problems(nb)


def test_notebook_parameters_route_settings_to_overrides():
    assert book.notebook_parameters("full") == {"mode": "full"}
    p = book.notebook_parameters("fast", {"seed": 3, "eta": 0.2, "overrides": {"sigma": 0.05}})
    assert p == {"seed": 3, "mode": "fast", "overrides": {"sigma": 0.05, "eta": 0.2}}
    with pytest.raises(SystemExit, match="unknown settings"):
        book.notebook_parameters("full", {"eat": 0.2})
    with pytest.raises(SystemExit):
        book.notebook_parameters("medium")


@pytest.mark.parametrize("path", CHAPTERS, ids=CHAPTER_IDS)
def test_parameters_cell_declares_mode_seed_overrides(path):
    cell = next(c for c in _read(path).cells if "parameters" in c.metadata.get("tags", []))
    names = {n.targets[0].id for n in ast.parse(cell.source).body if isinstance(n, ast.Assign)}
    assert names == set(book.NOTEBOOK_PARAMETERS)


def test_resolve_chapters():
    assert book.resolve("1") == CHAPTERS[0]
    assert book.resolve(CHAPTERS[1].stem) == CHAPTERS[1]
    with pytest.raises(SystemExit):
        book.resolve("99")


def test_console_script_lists_chapters():
    out = subprocess.run([sys.executable, "-m", "tsode", "book", "list"], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout.split()
    assert out == CHAPTER_IDS


# ------------------------------------------------------------------------------------------
# the HTML book, offline, in headless Chromium
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    out = tmp_path_factory.mktemp("book")
    proc = subprocess.run(
        [sys.executable, "-m", "tsode.book", "build", "--committed", "--path-output", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=600)
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert proc.returncode == 0 and not warnings, "\n".join(warnings) or log[-3000:]
    return out / "_build" / "html"


def test_book_builds_with_W(built_book):
    pages = sorted(p.relative_to(built_book).as_posix() for p in (built_book / "book").glob("*.html"))
    assert pages == sorted(f"book/{s}.html" for s in ["intro", "references", "cite",
                                                      *CHAPTER_IDS])
    downloads = {p.name for p in (built_book / "_downloads").rglob("reproduced.*")}
    assert downloads == {"reproduced.csv", "reproduced.json"}, "the full record list"
    assert (built_book / "_static" / "mathjax" / "tex-chtml.js").exists(), "MathJax is bundled"
    for page in pages:
        html = (built_book / page).read_text()
        assert "cdn.jsdelivr.net" not in html and "mathjax@" not in html, f"{page} loads a CDN"


# ------------------------------------------------------------------------------------------
# plotting: explicit style, figure data, smallest text
# ------------------------------------------------------------------------------------------
def test_importing_plotting_changes_no_style():
    code = ("import matplotlib as mpl; d = mpl.rcParams['font.size']; "
            "import tsode.book.plotting as p; a = mpl.rcParams['font.size']; p.use_style(); "
            "print(d, a, mpl.rcParams['font.size'], mpl.rcParams['figure.figsize'][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "MPLBACKEND": "Agg"}).stdout.split()
    assert out[0] == out[1] == "10.0" and out[2] == "10.5"
    assert float(out[3]) <= 6.6, "figures are designed for the book's column"


def _agg_figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, 2, figsize=(4, 2), dpi=100)


def test_figure_csv_holds_the_drawn_data():
    from tsode.book.export import figure_csv

    fig, (a, b) = _agg_figure()
    a.plot([1, 2], [3, 4], label="line")
    a.errorbar([5], [6], yerr=[0.5], fmt="o", label="sgd")
    a.set_title("(a)")
    b.imshow([[1.0, 2.0], [3.0, 4.0]])
    rows = figure_csv(fig).splitlines()
    assert rows[0] == "panel,series,x,y,yerr"
    assert '"(a)","line",1,3,' in rows and '"(a)","line",2,4,' in rows
    assert '"(a)","sgd",5,6,0.5' in rows
    assert '"panel 2","matrix row 2",1,3,' in rows, "matrices are written 1-based"


def test_min_font_px_counts_scripts_at_their_size():
    from tsode.book.export import min_font_px

    fig, (a, b) = _agg_figure()
    for ax in (a, b):
        ax.set_xticks([])
        ax.set_yticks([])
    a.set_title("plain", fontsize=10)
    b.set_title("$x_1$", fontsize=12)
    # 10 pt = 13.9 px at 100 dpi; the subscript of a 12 pt title is 0.7 * 12 pt = 11.7 px
    assert abs(min_font_px(fig) - 0.7 * 12 * 100 / 72) < 1e-9


# ------------------------------------------------------------------------------------------
# citing (issue 23)
# ------------------------------------------------------------------------------------------
def test_citation_cff_names_the_paper_and_this_companion():
    import yaml

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["type"] == "software"
    assert cff["title"].startswith("tsode") and cff["authors"] and cff["message"]
    paper = cff["preferred-citation"]
    assert paper["title"].split() == ("Dynamics of stochastic gradient descent for two-layer "
                                      "neural networks in the teacher-student setup").split()
    assert [a["family-names"] for a in paper["authors"]] == [
        "Goldt", "Advani", "Saxe", "Krzakala", "Zdeborová"]
    assert paper["year"] == 2019 and "arXiv:1906.08632" in str(paper["identifiers"])
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert str(cff["version"]) == version, "CITATION.cff follows the package version"


def test_how_to_cite_page_is_in_the_toc_and_cites_the_paper():
    assert re.search(r"^\s*- file: book/cite\s*$", (ROOT / "_toc.yml").read_text(), re.M)
    text = (ROOT / "book" / "cite.md").read_text()
    assert "{cite}`goldt2019dynamics`" in text and "@software{tsode" in text
    assert "CITATION.cff" in text


def test_saad_solla_1995_entries_are_told_apart():
    from pybtex.database import parse_file

    bib = parse_file(str(ROOT / "book" / "references.bib")).entries
    years = sorted(bib[k].fields["year"] for k in ("saad1995prl", "saad1995pre"))
    assert years == ["1995a", "1995b"]
