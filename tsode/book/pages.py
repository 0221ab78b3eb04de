"""Generated parts of the book's pages: "Re-running this chapter" and the records of reproduced
numbers.

* :func:`rerun_section` — displayed by the last cell of every chapter: the chapter's settings in
  the fast and the full mode (from the registered settings classes,
  :data:`tsode.book.chapter.REGISTRY`, at execution time),
  the measured run time, the commands and where the output goes;
* :func:`record` / :func:`read_summary` — records of reproduced numbers (``book/data/summary.json``
  format: a list of dicts with the keys of :data:`SUMMARY_KEYS`);
* :func:`merge_records` — the runner installs a chapter's records with its notebook (the intro's
  overview, :mod:`tsode.book.overview`, reads them).
"""

from __future__ import annotations

import html
import json
import os
import time
from pathlib import Path

__all__ = ["CHAPTER_EXPERIMENTS", "SUMMARY_KEYS", "rerun_section", "record", "read_summary",
           "merge_records"]

#: The experiments (names in :data:`tsode.book.chapter.REGISTRY`) each chapter runs.
CHAPTER_EXPERIMENTS = {
    "01_odes": ["fig1", "ode_vs_sgd", "convergence"],
    "02_first_layer": ["first_layer", "collapse", "noiseless", "slow_mode", "long_times"],
    "03_both_layers": ["both_layers"],
    "04_fixed_points": ["fixed_points", "split_units"],
}
#: The fields of a record of book/data/summary.json (issue 12).
SUMMARY_KEYS = ("id", "chapter", "claim", "quantity", "value", "stderr", "method", "alpha", "N",
                "runs", "activation", "layers", "K", "M", "eta", "sigma", "reference",
                "reference_source")
#: Where chapters write their records: ``$TSODE_BOOK_DATA``, set by the runner to ``book/data``
#: for ``--in-place`` runs and to ``<output>/data`` otherwise. Unset (nbval, plain papermill,
#: Jupyter), :func:`record` writes nothing, so tests leave the checkout clean.
DATA_ENV = "TSODE_BOOK_DATA"


def _fmt(value) -> str:
    return html.escape(repr(value) if not isinstance(value, str) else value)


def _settings_rows(name: str) -> list[tuple[str, str, str]]:
    """(setting, fast, full) for every setting of experiment ``name`` (per activation part)."""
    from . import experiments  # noqa: F401  (imports every chapter module: they register)
    from .chapter import REGISTRY

    cls = REGISTRY[name]
    rows = []
    for part in list(cls.PARTS) or [None]:
        fast, full = cls.of("fast", part).as_dict(), cls.of("full", part).as_dict()
        where = name if part is None else f"{name} ({part})"
        same = ", ".join(f"{k} = {_fmt(v)}" for k, v in full.items() if fast.get(k) == v)
        if same:
            rows.append((where, same, "same"))
        rows += [(f"{where}: {k}", _fmt(fast.get(k)), _fmt(v))
                 for k, v in full.items() if fast.get(k) != v]
    return rows


def _kernel_seconds() -> float:
    """Seconds since this process (the notebook's kernel) started."""
    import psutil

    return time.time() - psutil.Process().create_time()


def rerun_html(chapter: str, mode: str, overrides: dict, seconds: float) -> str:
    """The HTML of :func:`rerun_section` (pure; ``seconds`` is the measured run time)."""
    number = int(chapter[:2])
    rows = [r for name in CHAPTER_EXPERIMENTS[chapter] for r in _settings_rows(name)]
    table = "".join(
        f"<tr><td>{a}</td><td colspan='2'><i>both modes:</i> {b}</td></tr>" if c == "same"
        else f"<tr><td>{a}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    over = f" with overrides <code>{_fmt(overrides)}</code>" if overrides else ""
    minutes = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{10 * round(seconds / 10):.0f} s"
    cmds = "\n".join([
        f"python -m tsode.book run --mode fast {number}       # quick check",
        f"python -m tsode.book run {number} -p seed 1 -p eta 0.2",
        "python -m tsode.book build                         # HTML in _build/html",
        f"papermill book/{chapter}.ipynb out.ipynb -p mode fast --cwd book",
    ])
    return (
        "<div class='tsode-rerun'>"
        f"<p>This page was executed in <b>{mode}</b> mode{over}; the run took about "
        f"<b>{minutes}</b> (including the kernel's start).</p>"
        "<table class='tsode-settings' style='table-layout:fixed;width:100%;"
        "overflow-wrap:anywhere'><colgroup><col style='width:30%'><col style='width:35%'>"
        "<col style='width:35%'></colgroup>"
        "<thead><tr><th>setting</th><th>fast</th><th>full</th></tr>"
        f"</thead><tbody>{table}</tbody></table>"
        "<p>Commands (from the repository root); the runner writes the executed notebook to "
        "<code>_build/notebooks/</code> and never modifies the committed one; "
        "<code>-p NAME VALUE</code> sets a notebook parameter (<code>seed</code>) or any "
        "setting of the table, the mode is <code>--mode</code>:</p>"
        f"<pre style='white-space:pre-wrap'>{html.escape(cmds)}</pre></div>"
    )


def rerun_section(chapter: str, mode: str, overrides: dict | None = None):
    """Display the chapter's "Re-running this chapter" block (call it in the last cell)."""
    from IPython.display import HTML, display

    display(HTML(rerun_html(chapter, mode, dict(overrides or {}), _kernel_seconds())))


# ------------------------------------------------------------------------------------------
# reproduced results
# ------------------------------------------------------------------------------------------
def data_dir() -> Path | None:
    """The folder of summary.json for this run (see :data:`DATA_ENV`); None: do not write."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else None


def _round(x, digits: int):
    """``x`` to ``digits`` significant digits (floats only, :func:`~tsode.book.accuracy.claimed`):
    the precision the book claims, so that re-running on another machine rewrites no digit."""
    from .accuracy import claimed

    return claimed(x, f".{digits}g") if isinstance(x, float) else x


def record(rec: dict, path: Path | None = None, digits: int = 4) -> dict:
    """Add (or replace, by ``id``) one record in summary.json (``path``, else that of
    :func:`data_dir`; neither: write nothing, return the record); missing keys become None;
    ``value`` and ``reference`` are rounded to ``digits`` significant digits, ``stderr`` to 2."""
    unknown = set(rec) - set(SUMMARY_KEYS)
    if unknown or "id" not in rec or "chapter" not in rec:
        raise ValueError(f"a record needs id and chapter, and only the keys {SUMMARY_KEYS}; "
                         f"got unknown {sorted(unknown)}")
    rec = {k: rec.get(k) for k in SUMMARY_KEYS}
    rec.update(value=_round(rec["value"], digits), reference=_round(rec["reference"], digits),
               stderr=_round(rec["stderr"], 2))
    if path is None and data_dir() is None:
        return rec
    path = Path(path) if path else data_dir() / "summary.json"
    records = [r for r in read_summary(path) if r["id"] != rec["id"]]
    records.append(rec)
    records.sort(key=lambda r: (str(r["chapter"]), str(r["id"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")
    return rec


def read_summary(path: Path) -> list[dict]:
    """The records of a summary.json (an empty list if there is none)."""
    path = Path(path)
    if not path.exists():
        return []
    records = json.loads(path.read_text())
    if not isinstance(records, list) or not all(isinstance(r, dict) and "id" in r for r in records):
        raise ValueError(f"{path}: summary.json must be a list of records with an 'id'")
    return records


def merge_records(path: Path, chapter: int, new: list[dict]) -> None:
    """Replace the records of ``chapter`` in the summary.json at ``path`` by ``new`` (a chapter
    run that succeeded: its records, and only those, describe the notebook now installed)."""
    path = Path(path)
    keep = [r for r in read_summary(path)
            if str(r.get("chapter")) != str(chapter) and r["id"] not in {n["id"] for n in new}]
    if not keep and not new and not path.exists():
        return
    records = sorted(keep + list(new), key=lambda r: (str(r["chapter"]), str(r["id"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")
