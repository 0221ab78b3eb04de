"""The intro's overview of reproduced results (tsode.book.overview): numbers for reading, maths
as maths, one row per claim, agreement counted by hand, any set of chapters (a chapter 5 whose
records measure a "plateau exit slope" included), and a visible note for a mixed book.
"""

from __future__ import annotations

import csv
import io
import json

import nbformat
import pytest

from tsode.book import overview as ov
from tsode.book import pages


def _rec(**kw):
    return {k: kw.get(k) for k in pages.SUMMARY_KEYS}


def test_numbers_are_formatted_for_reading():
    # a common power of ten, one maths span per value so that a cell can wrap between them
    assert ov.format_values([0.000192, 0.0003694]) == r"$1.92$, $3.69$ ($\times10^{-4}$)"
    assert ov.format_values([1.5e-4]) == r"$1.50\times10^{-4}$"
    assert ov.format_values([0.5, -0.25]) == "$0.500$, $-0.250$"
    # concise uncertainty: 1.924(19) is 1.924 +- 0.019 (two digits of the standard error)
    assert ov.format_values([0.0001924], [1.9e-6]) == r"$1.924(19)\times10^{-4}$"
    assert ov.format_values([-0.4682], [0.042]) == "$-0.468(42)$"
    assert ov.tex_number(207.94005102040816) == "208"
    assert ov.tex_number(0.000192) == r"1.92\times10^{-4}"


def test_record_text_becomes_maths():
    assert ov.as_math("eps_g* grows with L") == r"$\epsilon_g^*$ grows with L"
    assert ov.as_math("like N^-1/2 escape") == "like $N^{-1/2}$ escape"
    assert ov.as_math("sup|Q_SGD - Q_ODE|") == r"$\sup\lvert Q_\mathrm{SGD} - Q_\mathrm{ODE}\rvert$"
    assert ov.as_math("eps_g at alpha = 10000, K = M") == (
        r"$\epsilon_g$ at $\alpha = 10000$, $K = M$")
    assert ov.as_math("plateau exit slope") == "plateau exit slope", "plain words stay"


def _chapter5():
    return [_rec(id=f"ch5-exit-K{k}", chapter=5, claim="the plateau exit is exponential",
                 quantity=f"plateau exit slope, K = {k}", value=v, stderr=se,
                 method="sgd_reduced", activation="erf", layers="first", K=k, M=2,
                 reference=ref, reference_source="linearised ODE")
            for k, v, se, ref in ((2, 0.1234, 0.001, 0.1230), (3, 0.2, 0.001, 0.21))]


def test_rows_group_a_claim_and_count_agreement_by_hand():
    rows = ov.groups(_chapter5())
    assert len(rows) == 1
    row = rows[0]
    assert row.quantity == "plateau exit slope" and [e[0] for e in row.entries] == [
        "K = 2", "K = 3"]
    # |0.1234 - 0.1230| / 0.001 = 0.4 s.e.; |0.2 - 0.21| / 0.001 = 10 s.e.
    assert ov.agreement(row) == "1/2 within 2 s.e. (largest 10.0 s.e.)"
    assert ov.ours(row) == "$K = 2, 3$: $0.1234(10)$, $0.2000(10)$"
    table = ov.chapter_table(rows)
    assert table.startswith("```{list-table}") and "plateau exit slope" in table


def test_deterministic_values_agree_relatively_and_sgd_falls_back_to_the_ode():
    recs = [_rec(id="a", chapter=3, claim="c", quantity="eps_g, K = 2", value=1.0e-4,
                 method="ode", reference=1.0e-4),
            _rec(id="b", chapter=3, claim="c", quantity="eps_g, K = 3", value=1.1e-4,
                 method="ode", reference=1.0e-4)]
    assert ov.agreement(ov.groups(recs)[0]) == "1/2 within 0.1 % (largest 10 %)"
    no_ref = [_rec(id="o", chapter=2, claim="d", quantity="eps_g, L = 0", value=0.5,
                   method="ode"),
              _rec(id="s", chapter=2, claim="d", quantity="eps_g, L = 0", value=0.53,
                   stderr=0.01, method="sgd_reduced")]
    assert ov.agreement(ov.groups(no_ref)[0]) == "0/1 within 2 s.e. (largest 3.0 s.e.) of the ODE"


def test_long_lists_show_their_ends():
    recs = [_rec(id=f"r{L}", chapter=2, claim="c", quantity=f"eps_g, L = {L}",
                 value=(L + 1) * 1e-4, method="ode") for L in range(5)]
    assert ov.ours(ov.groups(recs)[0]) == r"$L = 0$ … $4$: $1.00$ … $5.00$ ($\times10^{-4}$)"


def _notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 5. Plateaus\n\ntext"),
                nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})]
    nbformat.write(nb, str(path))
    return path


def test_chapter_run_and_the_mixed_book_note(tmp_path):
    run5 = ov.chapter_run(_notebook(tmp_path / "05_plateaus.ipynb",
                                    'mode = "fast"\noverrides = {"sigma": 0.05}\n'), "re-run")
    assert (run5.number, run5.title, run5.mode, run5.overrides) == (
        5, "5. Plateaus", "fast", {"sigma": 0.05})
    full = [ov.ChapterRun(f"0{n}_x", n, f"{n}. x", "full") for n in (1, 2, 3)]
    assert ov.mixed_note(full) == ""
    note = ov.mixed_note(full + [run5])
    assert "chapters 1–3: full mode (committed)" in note
    assert "chapter 5: fast mode, overrides `sigma = 0.05` (re-run)" in note
    text = ov.overview_markdown(full + [run5], {5: _chapter5()}, ("r.csv", "r.json"))
    assert text.count("*No reproduced numbers recorded for this chapter.*") == 3
    assert "**[5. Plateaus](05_plateaus.ipynb)** — *fast mode" in text
    assert "{download}`CSV <r.csv>`" in text and "All 2 recorded numbers" in text


def test_csv_and_json_hold_every_record_with_its_run():
    run5 = ov.ChapterRun("05_plateaus", 5, "5. Plateaus", "fast", {"sigma": 0.05}, "re-run")
    flat = ov.flat_records([run5], {5: _chapter5()})
    rows = list(csv.DictReader(io.StringIO(ov.records_csv(flat))))
    assert [r["id"] for r in rows] == ["ch5-exit-K2", "ch5-exit-K3"]
    assert tuple(rows[0]) == ov.RECORD_COLUMNS
    assert rows[0]["mode"] == "fast" and json.loads(rows[0]["overrides"]) == {"sigma": 0.05}
    assert rows[0]["stderr"] == "0.001" and rows[0]["runs"] == ""
    json.dumps(flat)  # the JSON download


@pytest.mark.parametrize("stem", ["01_odes", "04_fixed_points"])
def test_committed_chapters_read_as_full_mode(stem):
    from tsode.book import runner

    run = ov.chapter_run(runner.BOOK / f"{stem}.ipynb")
    assert run.mode == "full" and run.overrides == {} and run.title.startswith(stem[1] + ".")
