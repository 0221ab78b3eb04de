"""The book's overview of reproduced results: one compact table per chapter for the intro, and
the full record list as CSV and JSON.

Every chapter contributes the records of the notebook that will be rendered (its executed copy
in ``_build/notebooks`` if there is one, else the committed one), labelled with the mode and
overrides of that notebook's run, so a partial re-run never drops the other chapters' results
and a mixed book says so.

* :func:`chapter_run` — the title, mode and overrides of a chapter notebook;
* :func:`groups` — records grouped into table rows (chapter, claim, activation, layers);
* :func:`overview_markdown` — the MyST markdown of the overview (claim, reference, ours,
  agreement per row; numbers in scientific notation as maths);
* :func:`records_csv` — the flat CSV of all records, with their chapter's mode and overrides.

Pure functions of their arguments: the runner (:mod:`tsode.book.runner`) picks the files.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from .pages import SUMMARY_KEYS

__all__ = ["ChapterRun", "chapter_run", "Row", "groups", "as_math", "tex_number",
           "format_values", "ours", "reference", "agreement", "chapter_table", "mixed_note",
           "overview_markdown", "flat_records", "records_csv", "RECORD_COLUMNS", "AGREE_SE",
           "AGREE_REL", "INTRO_MARKER"]

#: The line of book/intro.md that the overview replaces.
INTRO_MARKER = "<!-- summary-table -->"

#: A statistical value agrees with its reference within this many standard errors.
AGREE_SE = 2.0
#: A deterministic value agrees with its reference within this relative difference (records
#: hold 4 significant digits, so 0.1 % is "the same to the digits recorded").
AGREE_REL = 1e-3
#: Columns of the CSV/JSON record list: the summary.json keys, then the chapter's run.
RECORD_COLUMNS = SUMMARY_KEYS + ("mode", "overrides", "origin")
#: Readable names of the record methods.
METHODS = {"ode": "ODE", "sgd_reduced": "SGD", "sgd_full": "SGD", "sgd": "SGD",
           "fixed_point": "fixed point", "sde": "SDE"}
_STATISTICAL = ("sgd", "sde")


# ------------------------------------------------------------------------------------------
# a chapter's run
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChapterRun:
    """How a chapter notebook was executed.

    ``stem`` e.g. ``"04_fixed_points"``; ``number`` 4; ``title`` its first heading;
    ``mode`` ``"fast"``/``"full"`` (None: not executed by the runner); ``overrides`` the
    settings changed with ``-p``; ``origin`` ``"committed"`` or ``"re-run"``."""

    stem: str
    number: int
    title: str
    mode: str | None
    overrides: dict = field(default_factory=dict)
    origin: str = "committed"

    @property
    def label(self) -> str:
        """E.g. ``fast mode, overrides `sigma = 0.05` (re-run)`` (MyST)."""
        text = f"{self.mode} mode" if self.mode else "mode unknown"
        if self.overrides:
            text += ", overrides " + ", ".join(f"`{k} = {v!r}`" for k, v in self.overrides.items())
        return f"{text} ({self.origin})"


def _parameters(nb) -> dict:
    """The values assigned in the injected-parameters cell (else the parameters cell)."""
    for tag in ("injected-parameters", "parameters"):
        for cell in nb.cells:
            if cell.cell_type == "code" and tag in cell.metadata.get("tags", []):
                values = {}
                for node in ast.parse(cell.source).body:
                    if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
                        try:
                            values[node.targets[0].id] = ast.literal_eval(node.value)
                        except ValueError:
                            pass
                return values | {"_injected": tag == "injected-parameters"}
    return {}


def chapter_run(path: Path, origin: str = "committed") -> ChapterRun:
    """The :class:`ChapterRun` of the notebook at ``path`` (its stem starts with two digits)."""
    import nbformat

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    title = next((line.lstrip("#").strip() for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# ")), path.stem)
    params = _parameters(nb)
    mode = params.get("mode") if params.get("_injected") else None
    return ChapterRun(path.stem, int(path.stem[:2]), title, mode,
                      dict(params.get("overrides") or {}), origin)


# ------------------------------------------------------------------------------------------
# rows
# ------------------------------------------------------------------------------------------
_SUFFIX = re.compile(r",\s*([A-Za-z_]+)\s*=\s*([-+\w.]+)\s*$")


def _split_label(text: str) -> tuple[str, str | None]:
    """``"eps_g, L = 2"`` -> (``"eps_g"``, ``"L = 2"``); no trailing ``, X = v``: (text, None)."""
    m = _SUFFIX.search(text or "")
    return (text[:m.start()], f"{m.group(1)} = {m.group(2)}") if m else (text or "", None)


@dataclass(frozen=True)
class Row:
    """One row of a chapter's table: records sharing chapter, claim (without a trailing
    ``, X = v``), activation and layers. ``entries``: (label, record) in record order, the label
    naming what varies between the records (``"L = 2"``, ``"L = 1, N = 500"``) or None."""

    chapter: int
    claim: str
    quantity: str
    setting: str
    entries: tuple


_VARYING = ("K", "M", "N", "alpha", "eta", "sigma")


def _values(records: list[dict], key: str) -> list:
    """The distinct values (not None) of ``key`` in ``records``, in order."""
    out = []
    for r in records:
        if r.get(key) is not None and r[key] not in out:
            out.append(r[key])
    return out


def _setting(records: list[dict], varying: set, kinds: bool = False) -> str:
    """The activation and layers the records share (``kinds``: they differ, name neither); the
    other settings are in the chapter and the CSV."""
    r = records[0]
    parts = [r["activation"]] if r.get("activation") and not kinds else []
    if r.get("layers") and not kinds:
        parts.append(f"{r['layers']} layer" + ("s" if r["layers"] == "both" else ""))
    return ", ".join(parts)


def _plain(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        x = int(x)
    if isinstance(x, int) and abs(x) >= 10_000 and x % 1000 == 0:
        e = int(math.log10(abs(x)))
        if x == 10**e:
            return f"10^{e}"
    return f"{x:g}" if isinstance(x, float) else str(x)


def _activation_suffix(claim: str, r: dict) -> tuple[str, str | None]:
    """``"state reached: erf, both layers"`` -> (``"state reached"``, ``"erf, both"``) when the
    suffix names the record's own activation and layers; else (claim, None)."""
    m = re.search(r":\s*(\w+),\s*(first|both) layers?\s*$", claim)
    if m and m[1] == r.get("activation") and m[2] == r.get("layers"):
        return claim[:m.start()], f"{m[1]}, {m[2]}"
    return claim, None


def _quantity_token(quantities: list[str]) -> tuple[str, list[str]] | None:
    """Quantities differing by one symbol before ``_`` (``sup|Q_SGD - Q_ODE|``,
    ``sup|R_SGD - R_ODE|``): (the quantity with ``X`` for the symbol, the symbols); else None."""
    first = quantities[0]
    i = next((k for k, (a, b) in enumerate(zip(first, quantities[1])) if a != b), None)
    if i is None:
        return None
    while i > 0 and first[i - 1].isalpha():
        i -= 1
    symbols, common = [], set()
    for q in quantities:
        m = re.match(r"[A-Za-z]+(?=_)", q[i:])
        if not m:
            return None
        symbols.append(m[0])
        common.add(re.sub(rf"(?<![A-Za-z]){m[0]}(?=_)", "X", q))
    return (common.pop(), symbols) if len(common) == 1 else None


def groups(records: list[dict]) -> list[Row]:
    """Records grouped into :class:`Row` s, in the order of their first record: one row per
    chapter, claim and kind (activation and layers, unless the claim names them itself)."""
    keyed: dict = {}
    for r in records:
        claim, claim_label = _split_label(r.get("claim") or r["id"])
        claim, kind = _activation_suffix(claim, r)
        quantity, q_label = _split_label(r.get("quantity") or "")
        key = (r["chapter"], claim) + ((None, None) if kind else (r.get("activation"),
                                                                r.get("layers")))
        label = ", ".join(x for x in (kind, claim_label or q_label) if x) or None
        keyed.setdefault(key, []).append((label, quantity, r))
    rows = []
    for (chapter, claim, _, _), items in keyed.items():
        recs = [r for _, _, r in items]
        varying = {k for k in _VARYING if len(_values(recs, k)) > 1}
        quantity = items[0][1]
        quantities = [q for _, q, _ in items]
        if len(set(quantities)) > 1:  # the quantity tells the records apart
            token = _quantity_token(quantities)
            quantity = token[0] if token else ""
            names = [f"X = {t}" for t in token[1]] if token else quantities
            items = [(n if label is None else f"{n}, {label}", "", r)
                     for n, (label, _, r) in zip(names, items)]
        entries = []
        for label, _, r in items:
            extra = [f"{k} = {_plain(r[k])}" for k in sorted(varying - {"K"})
                     if r.get(k) is not None and not (label or "").startswith(k)]
            if "K" in varying and not label:
                extra.insert(0, f"K = {r['K']}")
            entries.append((", ".join(([label] if label else []) + extra) or None, r))
        by_size = any(e[0] and e[0].startswith(("K", "L")) for e in entries)
        kinds = len({(r.get("activation"), r.get("layers")) for r in recs}) > 1
        setting = _setting(recs, (varying | {"K"}) if by_size else varying, kinds)
        rows.append(Row(chapter, claim, quantity, setting, tuple(entries)))
    return rows


# ------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------
_GREEK = {"alpha": r"\alpha", "eta": r"\eta", "sigma": r"\sigma", "kappa": r"\kappa",
          "lambda": r"\lambda", "rho": r"\rho"}
#: Formulas of the records' text, written out (checked before the generic patterns below).
_FORMULAS = {
    "eta sigma^2 K/(2(2-eta K))": r"$\eta\sigma^2 K/(2(2-\eta K))$",
    "N -> inf": r"$N\to\infty$",
    "(M/K) eps_g*(K = M)": r"$(M/K)\,\epsilon_g^*(K = M)$",
}
_MATH = [
    (re.compile("|".join(re.escape(f) for f in _FORMULAS)), lambda m: _FORMULAS[m[0]]),
    (re.compile(r"sup\|(\w+?)_(SGD|ODE) - (\w+?)_(SGD|ODE)\|"),
     lambda m: rf"$\sup\lvert {_sym(m[1], m[2])} - {_sym(m[3], m[4])}\rvert$"),
    (re.compile(r"\beps_g\*"), lambda m: r"$\epsilon_g^*$"),
    (re.compile(r"\beps_g\(alpha_(\w+)\)"), lambda m: rf"$\epsilon_g(\alpha_\mathrm{{{m[1]}}})$"),
    (re.compile(r"\beps_g\b"), lambda m: r"$\epsilon_g$"),
    (re.compile(r"\b([A-Za-z])\^(-?[\d/.]+)"), lambda m: f"${m[1]}^{{{m[2]}}}$"),
    (re.compile(r"\b(alpha|eta|sigma) = (10\^\d+|[-+]?[\d.]+(?:e[-+]?\d+)?)\b"),
     lambda m: f"${_GREEK[m[1]]} = {_tex_number_text(m[2])}$"),
    (re.compile(r"\b(alpha|eta|sigma)\b"), lambda m: f"${_GREEK[m[1]]}$"),
    (re.compile(r"(?<![\w$\\])([A-Z]) = ([A-Z]|\d+(?:\.\d+)?)\b"), lambda m: f"${m[1]} = {m[2]}$"),
    (re.compile(r"(?<![\w$\\])M/K\b"), lambda m: "$M/K$"),
]


def _sym(name: str, sub: str) -> str:
    """``Q``, ``SGD`` -> ``Q_\\mathrm{SGD}``; ``eg`` is the generalisation error."""
    return rf"\epsilon_g^\mathrm{{{sub}}}" if name == "eg" else rf"{name}_\mathrm{{{sub}}}"


def _tex_number_text(text: str) -> str:
    if text.startswith("10^"):
        return f"10^{{{text[3:]}}}"
    try:
        x = float(text)
    except ValueError:
        return text
    return tex_number(x) if ("e" in text.lower()) else text


def as_math(text: str) -> str:
    """Plain-text formulas of the records (``eps_g*``, ``N^-1/2``, ``sigma = 0.05``,
    ``K = M``) as MyST inline maths; the rest of the text unchanged."""
    out, pos = [], 0
    pieces = []
    for pattern, repl in _MATH:
        for m in pattern.finditer(text):
            pieces.append((m.start(), m.end(), repl(m)))
    pieces.sort(key=lambda p: (p[0], -p[1]))
    for start, end, rep in pieces:
        if start < pos:
            continue
        out += [text[pos:start], rep]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def tex_number(x: float, digits: int = 3) -> str:
    r"""``x`` with ``digits`` significant digits in TeX: ``1.92\times10^{-4}``, ``0.468``."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    e = math.floor(math.log10(abs(x)))
    if -2 <= e <= 3:
        return f"{x:.{digits}g}" if e >= digits - 1 else f"{x:.{max(digits - 1 - e, 0)}f}"
    return rf"{x / 10**e:.{digits - 1}f}\times10^{{{e}}}"


def _mantissa(x: float, e: int, digits: int = 3) -> str:
    m = x / 10**e
    d = max(digits - 1 - (math.floor(math.log10(abs(m))) if m else 0), 0)
    return f"{m:.{d}f}"


def _concise(x: float, se: float, e: int) -> str:
    """``x ± se`` in concise notation on the scale ``10^e``: ``1.924(19)``."""
    m, s = x / 10**e, se / 10**e
    if s <= 0 or not math.isfinite(s):
        return _mantissa(x, e)
    d = max(1 - math.floor(math.log10(s)), 0)
    return f"{m:.{d}f}({round(s * 10**d):d})"


def format_values(values: list[float], stderrs: list | None = None, sep: str = ", ") -> str:
    r"""A list of values as maths, one span per value (so a table cell can wrap between them),
    with a common power of ten where that reads better: ``$1.92$, $3.69$ ($	imes10^{-4}$)``;
    values with a standard error in concise notation (``1.924(19)`` means 1.924 ± 0.019)."""
    stderrs = list(stderrs) if stderrs is not None else [None] * len(values)
    finite = [abs(v) for v in values if isinstance(v, (int, float)) and v and math.isfinite(v)]
    if not finite:
        return sep.join(f"${v:g}$" for v in values)
    e = math.floor(math.log10(max(finite)))
    if -2 <= e <= 2 and min(finite) >= 1e-2:
        e = 0
    parts = [_concise(v, s, e) if isinstance(s, (int, float)) else _mantissa(v, e)
             for v, s in zip(values, stderrs)]
    if e == 0:
        return sep.join(f"${p}$" for p in parts)
    if len(parts) == 1:
        return f"${parts[0]}\\times10^{{{e}}}$"
    return sep.join(f"${p}$" for p in parts) + f" ($\\times10^{{{e}}}$)"


#: Lists longer than this are shown by their first and last value (all are in the CSV).
SHOW = 3


def _labelled(entries: list) -> str:
    """Values of entries [(label, record)] of one method, compactly: ``$L = 0, 1$: $1.9$,
    $3.7$ ($\\times10^{-4}$)``; more than :data:`SHOW` values of one label by the ends of the
    list (``$L = 0$ … $4$``), of several labels by their range."""
    labels = [lab for lab, _ in entries]
    values = [r["value"] for _, r in entries]
    errs = [r.get("stderr") for _, r in entries]
    keys = {lab.split("=")[0].strip() for lab in labels if lab} if all(labels) else set()
    if len(entries) == 1:
        return (f"{as_math(labels[0])}: " if labels[0] else "") + format_values(values, errs)
    if len(keys) == 1 and all(lab.count("=") == 1 for lab in labels):
        k = keys.pop()
        vals = [lab.split("=")[1].strip() for lab in labels]
        # a plain symbol (``L``, ``N``, ``eta``) goes into the maths; a longer name (a quantity
        # such as "eps_g(alpha_max), mean over starts, N") stays text that can wrap
        text, _, sym = k.rpartition(",")
        sym = sym.strip()
        head = (f"{as_math(text)}, " if text else "") + (
            f"${_symbol(sym)} = " if re.fullmatch(r"\w+", sym) else f"{as_math(sym)} $= ")
        if len(entries) > SHOW:
            ends = [0, len(entries) - 1]
            return (f"{head}{_tex_label(vals[0])}$ … ${_tex_label(vals[-1])}$: "
                    + format_values([values[i] for i in ends], [errs[i] for i in ends],
                                    sep=" … "))
        return (f"{head}{', '.join(_tex_label(v) for v in vals)}$: "
                + format_values(values, errs))
    if len(entries) > SHOW:
        lo, hi = min(range(len(values)), key=values.__getitem__), max(
            range(len(values)), key=values.__getitem__)
        return (f"{len(entries)} settings: " + format_values(
            [values[lo], values[hi]], [errs[lo], errs[hi]], sep=" … "))
    return "; ".join((f"{as_math(lab)}: " if lab else "") + format_values([v], [s])
                     for lab, v, s in zip(labels, values, errs))


_SYMBOLS = {"eg": r"\epsilon_g", "alpha": r"\alpha", "eta": r"\eta", "sigma": r"\sigma"}


def _symbol(name: str) -> str:
    return _SYMBOLS.get(name, name)


def _tex_label(value: str) -> str:
    return _SYMBOLS.get(value, value)


def _by_method(row: Row) -> dict:
    out: dict = {}
    for lab, r in row.entries:
        if isinstance(r.get("value"), (int, float)):
            out.setdefault(METHODS.get(r.get("method"), r.get("method") or "value"), []).append(
                (lab, r))
    return out


def ours(row: Row) -> str:
    """The row's values, per method."""
    methods = _by_method(row)
    if len(methods) == 1:
        return _labelled(next(iter(methods.values())))
    return "; ".join(f"{name}: {_labelled(ent)}" for name, ent in methods.items())


def reference(row: Row) -> str:
    """The reference values of the row and their source(s) (``—`` if none)."""
    refs = [(lab, r) for lab, r in row.entries if isinstance(r.get("reference"), (int, float))]
    sources = []
    for _, r in row.entries:
        if r.get("reference_source") and r["reference_source"] not in sources:
            sources.append(r["reference_source"])
    if not refs:
        return "; ".join(as_math(s) for s in sources) or "—"
    seen, uniq = set(), []
    for lab, r in refs:
        if (lab, r["reference"]) not in seen:
            seen.add((lab, r["reference"]))
            uniq.append((lab, {"value": r["reference"]}))
    return _labelled(uniq) + (" — " + "; ".join(as_math(s) for s in sources) if sources else "")


def _deviation(value: float, ref: float, se) -> tuple[bool, float, str]:
    """(agrees, size, unit): within :data:`AGREE_SE` s.e. or :data:`AGREE_REL` relative."""
    if isinstance(se, (int, float)) and se > 0:
        z = abs(value - ref) / se
        return z <= AGREE_SE, z, "se"
    rel = abs(value - ref) / abs(ref) if ref else abs(value - ref)
    return rel <= AGREE_REL, rel, "rel"


def agreement(row: Row) -> str:
    """How the row's values compare with their references: statistical values in standard
    errors (within :data:`AGREE_SE`), deterministic ones relatively (within :data:`AGREE_REL`).
    Without references, SGD values are compared with the ODE/fixed-point value of the same
    label when the row has one. ``—``: nothing to compare."""
    pairs = [(r["value"], r["reference"], r.get("stderr")) for _, r in row.entries
             if isinstance(r.get("value"), (int, float))
             and isinstance(r.get("reference"), (int, float))]
    against = "reference"
    if not pairs:
        det = {lab: r["value"] for lab, r in row.entries
               if not str(r.get("method", "")).startswith(_STATISTICAL)
               and isinstance(r.get("value"), (int, float))}
        pairs = [(r["value"], det[lab], r.get("stderr")) for lab, r in row.entries
                 if str(r.get("method", "")).startswith(_STATISTICAL) and lab in det]
        against = "ODE"
    if not pairs:
        return "—"
    out = []
    for unit in ("se", "rel"):
        devs = [_deviation(*p) for p in pairs]
        devs = [d for d in devs if d[2] == unit]
        if not devs:
            continue
        n_ok, worst = sum(d[0] for d in devs), max(d[1] for d in devs)
        if unit == "se":
            text = f"{n_ok}/{len(devs)} within {AGREE_SE:g} s.e."
            text += f" (largest {worst:.1f} s.e.)" if n_ok < len(devs) else ""
        elif n_ok == len(devs):
            text = f"{n_ok}/{len(devs)} within {100 * AGREE_REL:g} %"
        else:
            pct = f"{100 * worst:.2g}" if worst < 1 else f"{100 * worst:.0f}"
            text = f"{n_ok}/{len(devs)} within {100 * AGREE_REL:g} % (largest {pct} %)"
        out.append(text)
    return "; ".join(out) + ("" if against == "reference" else " of the ODE")


# ------------------------------------------------------------------------------------------
# the page
# ------------------------------------------------------------------------------------------
def _cell(text: str) -> str:
    return " ".join(str(text).split()) or "—"


def chapter_table(rows: list[Row]) -> str:
    """A MyST list-table: claim (with its setting), reference, ours, agreement."""
    lines = ["```{list-table}", ":header-rows: 1", ":widths: 28 24 32 16",
             ":class: tsode-overview", "",
             "* - claim", "  - reference", "  - ours", "  - agreement"]
    for row in rows:
        claim = as_math(row.claim)
        if row.quantity and row.quantity not in row.claim:
            claim += f" — {as_math(row.quantity)}"
        if row.setting:
            claim += f" ({as_math(row.setting)})"
        lines += [f"* - {_cell(claim)}", f"  - {_cell(reference(row))}",
                  f"  - {_cell(ours(row))}", f"  - {_cell(agreement(row))}"]
    return "\n".join(lines + ["```"])


def _span(numbers: list[int]) -> str:
    numbers = sorted(numbers)
    if len(numbers) > 2 and numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}–{numbers[-1]}"
    return ", ".join(map(str, numbers))


def mixed_note(runs: list[ChapterRun]) -> str:
    """A MyST warning when the chapters were not all executed the same way ('' if they were)."""
    kinds: dict = {}
    for run in runs:
        kinds.setdefault(run.label, []).append(run.number)
    if len(kinds) <= 1 and not any(r.overrides for r in runs):
        return ""
    parts = [f"chapter{'s' if len(n) > 1 else ''} {_span(n)}: {label}"
             for label, n in kinds.items()]
    return ("```{warning}\nThe chapters below were not all executed the same way — "
            + "; ".join(parts) + ". Their numbers are not from one consistent run of the book.\n```")


def overview_markdown(runs: list[ChapterRun], records: dict, downloads: tuple[str, str] | None
                      = None) -> str:
    """The overview in MyST markdown: the mixed-mode note, then per chapter a line linking to
    the chapter with its mode and overrides, and its table; ``records`` maps a chapter number to
    its records; ``downloads`` the (CSV, JSON) paths of the full record list."""
    out = [mixed_note(runs)] if mixed_note(runs) else []
    if downloads:
        csv_path, json_path = downloads
        total = sum(len(records.get(r.number, [])) for r in runs)
        out.append(f"All {total} recorded numbers, with every setting: "
                   f"{{download}}`CSV <{csv_path}>`, {{download}}`JSON <{json_path}>`.")
    for run in runs:
        recs = records.get(run.number, [])
        out.append(f"**[{run.title}]({run.stem}.ipynb)** — *{run.label}*")
        out.append(chapter_table(groups(recs)) if recs else
                   "*No reproduced numbers recorded for this chapter.*")
    return "\n\n".join(out)


def flat_records(runs: list[ChapterRun], records: dict) -> list[dict]:
    """All records in chapter order, each with :data:`RECORD_COLUMNS` (its chapter's run)."""
    out = []
    for run in runs:
        for r in records.get(run.number, []):
            out.append({**{k: r.get(k) for k in SUMMARY_KEYS}, "mode": run.mode,
                        "overrides": dict(run.overrides), "origin": run.origin})
    return out


def records_csv(rows: list[dict]) -> str:
    """The rows of :func:`flat_records` as CSV (overrides as JSON, missing values empty)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RECORD_COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(k) is None else json.dumps(r[k]) if k == "overrides" else r[k]
                    for k in RECORD_COLUMNS])
    return buf.getvalue()
