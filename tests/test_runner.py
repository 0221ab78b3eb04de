"""The book runner cannot lose outputs or dirty the checkout (issues 9 and 13).

Small throw-away notebooks (a few seconds each) test the runner's guarantees; one slower test
(~60 s) runs chapter 4 in fast mode on a fresh clone with the README's commands, builds the HTML,
and runs the chapter again with another thread count; one builds the book with a venv's python.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tsode.book import runner as book

ROOT = book.ROOT


def _notebook(path: Path, *sources: str, outputs=None) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('mode = "full"\nseed = 0\noverrides = {}',
                                       metadata={"tags": ["parameters"]})
    nb.cells = [params] + [nbformat.v4.new_code_cell(s) for s in sources]
    if outputs:
        nb.cells[-1].outputs = outputs
    nbformat.write(nb, str(path))
    return path


FIGURE = "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()"


def _pngs(path: Path) -> int:
    return book.counts(nbformat.read(str(path), as_version=4))["figures"]


def test_mplbackend_agg_does_not_strip_figures(tmp_path, monkeypatch, capfd):
    src = _notebook(tmp_path / "07_figure.ipynb", FIGURE)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert book.run([str(src)], "fast", output=str(tmp_path / "out")) == 0
    assert _pngs(tmp_path / "out" / src.name) == 1
    assert os.environ["MPLBACKEND"] == "Agg", "the caller's environment is restored"
    out, err = capfd.readouterr()
    assert "without encryption" not in out + err, "the kernel's transport warning is silenced"
    assert "07_figure" in out and " ok " in out, "one summary line per chapter"


def test_fewer_figures_than_committed_is_a_failure(tmp_path, capsys):
    png = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})
    src = _notebook(tmp_path / "08_lost.ipynb", "x = 1", outputs=[png])
    before = src.read_bytes()
    failed_dir = ROOT / "_build" / "failed"
    old = set(failed_dir.glob("08_lost-*.ipynb")) if failed_dir.exists() else set()
    try:
        assert book.run([str(src)], "fast", output=str(tmp_path / "out")) == 1
        assert book.run([str(src)], "full", in_place=True) == 1
        new = set(failed_dir.glob("08_lost-*.ipynb")) - old
        assert len(new) == 2, "two failing runs keep two files"
    finally:
        for p in set(failed_dir.glob("08_lost-*.ipynb")) - old:
            p.unlink()
    assert "figures: 0 instead of 1" in capsys.readouterr().err
    assert not (tmp_path / "out" / src.name).exists() and src.read_bytes() == before


def test_p_mode_is_an_error_pointing_to_mode(capsys):
    with pytest.raises(SystemExit, match="--mode"):
        book.main(["run", "-p", "mode", "fast", "1"])


def test_in_place_only_for_plain_full_runs():
    assert book.destination("full", {"mode": "full"}, None, False) == ROOT / "_build" / "notebooks"
    assert book.destination("full", {"mode": "full"}, None, True) is None
    with pytest.raises(SystemExit, match="--in-place"):
        book.destination("fast", {"mode": "fast"}, None, True)
    with pytest.raises(SystemExit, match="--in-place"):
        book.destination("full", {"mode": "full", "seed": 1}, None, True)


def test_broken_notebook_names_the_chapter(tmp_path, capsys):
    src = tmp_path / "09_broken.ipynb"
    src.write_text("{ this is not json")
    assert book.run([str(src)], "fast", output=str(tmp_path / "out")) == 1
    err = capsys.readouterr().err
    assert "chapter 09_broken" in err and "NotJSONError" in err
    assert "tsode-book-" not in err, "the message names the chapter, not a temp file"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signals_leave_no_temp_files(tmp_path, sig):
    book_dir = tmp_path / "nbs"
    book_dir.mkdir()
    src = _notebook(book_dir / "10_slow.ipynb", "import time\ntime.sleep(120)")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tsode.book", "run", "--mode", "fast", str(src),
                             "--output", str(tmp_path / "out")], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while not any(tmp.glob("tsode-book-*")) and time.time() < deadline:
        time.sleep(0.2)
    assert any(tmp.glob("tsode-book-*")), "the run did not start"
    time.sleep(3)  # the kernel is executing
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert not list(tmp.glob("tsode-book-*")), "temporary folder left behind"
    assert sorted(p.name for p in book_dir.iterdir()) == ["10_slow.ipynb"]
    assert not (tmp_path / "out").exists()


def _inherit_site_packages(venv: Path) -> None:
    """Let ``venv`` see the packages of the interpreter running the tests. ``venv
    --system-site-packages`` only adds the *base* interpreter's site-packages; when the tests
    themselves run in a virtualenv (as most users run them) the requirements live in that
    venv's site-packages, so a ``.pth`` file adds those (``site.addsitedir``: their own ``.pth``
    files, e.g. editable installs, are processed too)."""
    import site

    target = next(venv.glob("lib/python*/site-packages"))
    dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    (target / "_tests_parent_env.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({d!r})" for d in dirs) + "\n")


def test_build_with_a_venv_python_not_on_path(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True)
    _inherit_site_packages(venv)
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "tsode.book", "build", "--committed",
                           "--path-output", str(tmp_path / "out")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert (tmp_path / "out" / "_build" / "html" / "book" / "intro.html").exists()


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


def _tidy_cells(path: Path) -> list:
    """Cells of an executed notebook without the measured run time (the re-run section)."""
    nb = nbformat.read(str(path), as_version=4)
    return [c for c in nb.cells if not c.id.endswith("-rerun-code")]


def _threads(n: int) -> dict:
    return {v: str(n) for v in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def test_fresh_clone_stays_clean_and_thread_counts_change_nothing(tmp_path):
    """The README's reader commands (cheap variant: chapter 4 in fast mode, then build) leave
    ``git status`` clean on a fresh clone of this checkout's HEAD; the chapter run again with 2
    threads instead of 1 gives the same tidy notebook (except the measured run time)."""
    clone = tmp_path / "clone"
    _git("clone", "--quiet", str(ROOT), str(clone), cwd=tmp_path)
    _git("checkout", "--quiet", _git("rev-parse", "HEAD", cwd=ROOT).strip(), cwd=clone)
    env = {**os.environ, "PYTHONPATH": str(clone)}
    runs = (["run", "--mode", "fast", "4"], ["build"],
            ["run", "--mode", "fast", "4", "--output", str(tmp_path / "threads2")])
    for cmd, threads in zip(runs, (1, 1, 2)):
        proc = subprocess.run([sys.executable, "-m", "tsode.book", *cmd], cwd=clone,
                              env={**env, **_threads(threads)}, capture_output=True, text=True,
                              timeout=900)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        if cmd[0] == "build":
            assert (clone / "_build" / "html" / "book" / "04_fixed_points.html").exists()
            assert _git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""
    one = _tidy_cells(clone / "_build" / "notebooks" / "04_fixed_points.ipynb")
    two = _tidy_cells(tmp_path / "threads2" / "04_fixed_points.ipynb")
    for a, b in zip(one, two):
        assert a == b, f"cell {a.id} differs between 1 and 2 threads"
    assert len(one) == len(two)


def test_summary_records_and_merge(tmp_path):
    from tsode.book import pages

    path = tmp_path / "data" / "summary.json"
    pages.record({"id": "ch2-erf-L1", "chapter": 2, "claim": "eps_g* grows with L",
                  "quantity": "eps_g*", "value": 0.00123, "stderr": 4e-5, "method": "sgd_reduced",
                  "N": 1000, "runs": 8}, path)
    pages.record({"id": "ch2-erf-L1", "chapter": 2, "quantity": "eps_g*", "value": 0.002}, path)
    records = pages.read_summary(path)
    assert len(records) == 1 and records[0]["value"] == 0.002 and records[0]["stderr"] is None
    assert set(records[0]) == set(pages.SUMMARY_KEYS)
    with pytest.raises(ValueError, match="keys"):
        pages.record({"id": "x", "chapter": 1, "valeu": 1.0}, path)
    pages.record({"id": "ch3-a", "chapter": 3, "value": 1.0}, path)
    # a new run of chapter 2 replaces all of chapter 2's records, and only those
    pages.merge_records(path, 2, [{"id": "ch2-new", "chapter": 2, "value": 3.0}])
    assert sorted(r["id"] for r in pages.read_summary(path)) == ["ch2-new", "ch3-a"]
    pages.merge_records(path, 2, [])
    assert [r["id"] for r in pages.read_summary(path)] == ["ch3-a"]
    pages.merge_records(tmp_path / "none" / "summary.json", 1, [])
    assert not (tmp_path / "none").exists(), "nothing to merge writes nothing"


def test_a_run_installs_its_records_with_its_notebook(tmp_path):
    """The runner replaces the chapter's records beside the notebook it installs, and keeps the
    other chapters' records (a partial re-run never drops them)."""
    from tsode.book import pages

    out = tmp_path / "out"
    pages.record({"id": "ch1-kept", "chapter": 1, "value": 1.0}, out / "data" / "summary.json")
    pages.record({"id": "ch7-stale", "chapter": 7, "value": 9.0}, out / "data" / "summary.json")
    code = ("from tsode.book import pages\n"
            "pages.record({'id': 'ch7-new', 'chapter': 7, 'value': 2.0, 'sigma': overrides"
            ".get('sigma', 0.1)})")
    src = _notebook(tmp_path / "07_records.ipynb", code)
    assert book.run([str(src)], "fast", {"sigma": 0.05}, output=str(out)) == 0
    records = {r["id"]: r for r in pages.read_summary(out / "data" / "summary.json")}
    assert set(records) == {"ch1-kept", "ch7-new"} and records["ch7-new"]["sigma"] == 0.05


def test_staged_config_hides_repository_buttons_without_a_url():
    import yaml

    text = (ROOT / "_config.yml").read_text()
    assert "tsode/tsode" not in text, "no placeholder repository"
    staged = yaml.safe_load(book.staged_config(text))
    url = (yaml.safe_load(text).get("repository") or {}).get("url")
    if not url:
        assert "repository" not in staged
        assert not any(staged["html"][k] for k in book.REPOSITORY_BUTTONS)
    with_url = text.replace('url: ""', 'url: https://example.org/owner/tsode')
    assert book.staged_config(with_url) == with_url, "a configured repository is left alone"
    assert yaml.safe_load(book.staged_config(with_url))["html"]["use_repository_button"]


def test_partial_rerun_keeps_the_other_chapters_in_the_overview(tmp_path):
    """Issue 23: after ``run --mode fast 4 -p sigma 0.05`` and ``build``, the overview still
    holds chapters 1-3 (committed, full mode) and marks chapter 4's mode and override, with a
    note that the chapters were executed differently; chapter 4's numbers are its new run's."""
    from tsode.book import pages

    nbs = tmp_path / "notebooks"
    assert book.run(["4"], "fast", {"sigma": 0.05}, output=str(nbs)) == 0
    run4 = [r for r in pages.read_summary(nbs / "data" / "summary.json") if r["chapter"] == 4]
    assert run4 and all(r["sigma"] == 0.05 for r in run4 if r["sigma"] is not None)
    assert book.build(str(tmp_path), executed=str(nbs)) == 0
    intro = (tmp_path / "_build" / "src" / "book" / "intro.md").read_text()
    for stem in ("01_odes", "02_first_layer", "03_both_layers"):
        assert f"]({stem}.ipynb)** — *full mode (committed)*" in intro
    assert "](04_fixed_points.ipynb)** — *fast mode, overrides `sigma = 0.05` (re-run)*" in intro
    assert "were not all executed the same way" in intro
    html = (tmp_path / "_build" / "html" / "book" / "intro.html").read_text()
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split()).replace(" ,", ",")
    assert "4. The fixed points depend on the activation — fast mode, overrides sigma = 0.05" in text
    # chapters 1-3 and 5 committed, and the note
    assert text.count("full mode (committed)") == len(book.chapters()) - 1 + 1
    assert "chapters 1, 2, 3, 5: full mode (committed); chapter 4: fast mode" in text

    listed = json.loads((tmp_path / "_build" / "src" / "book" / "reproduced.json").read_text())
    committed = pages.read_summary(book.BOOK / "data" / "summary.json")
    for ch in (1, 2, 3):
        assert ({r["id"] for r in listed if r["chapter"] == ch}
                == {r["id"] for r in committed if r["chapter"] == ch}), f"chapter {ch} kept"
    assert ({r["id"] for r in listed if r["chapter"] == 4} == {r["id"] for r in run4})
    assert all(r["mode"] == "fast" and r["overrides"] == {"sigma": 0.05}
               for r in listed if r["chapter"] == 4)


def test_rerun_section_lists_both_modes_from_settings():
    from tsode.book import pages
    from tsode.book.odes import OdeVsSgdSettings

    html = pages.rerun_html("01_odes", "fast", {"eta": 0.2}, 75.0)
    fast, full = OdeVsSgdSettings.fast("erf").N, OdeVsSgdSettings.full("erf").N
    assert fast != full and f"<td>ode_vs_sgd (erf): N</td><td>{fast}</td><td>{full}</td>" in html
    assert "80 s" in html and "--mode fast 1" in html and "papermill book/01_odes.ipynb" in html
    assert "{&#x27;eta&#x27;: 0.2}" in html


def test_records_are_rounded_to_the_claimed_precision(tmp_path):
    from tsode.book import pages

    rec = pages.record({"id": "a", "chapter": 1, "value": 0.123456789, "stderr": 0.0123456,
                        "reference": 1 / 3}, tmp_path / "s.json")
    assert (rec["value"], rec["stderr"], rec["reference"]) == (0.1235, 0.012, 0.3333)


def test_records_outside_the_runner_write_nothing(monkeypatch, tmp_path):
    from tsode.book import pages

    monkeypatch.delenv(pages.DATA_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    rec = pages.record({"id": "a", "chapter": 1, "value": 1.0})
    assert rec["value"] == 1.0 and not list(tmp_path.rglob("*.json"))
