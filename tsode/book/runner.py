"""Execute and build the book.

Usage::

    python -m tsode.book run [--mode fast|full] [-p NAME VALUE ...] [--output DIR | --in-place] [CHAPTER ...]
    python -m tsode.book build [--committed]
    python -m tsode.book list

(or ``tsode book ...``). ``run`` executes chapter notebooks with papermill (kernel ``python3``,
working directory = the notebook's folder, matplotlib's inline backend whatever ``MPLBACKEND``
says) into ``_build/notebooks/`` (or ``--output DIR``) and tidies the result so that notebooks are
byte-stable when re-run:

* papermill's and nbclient's metadata and timestamps are removed;
* the injected-parameters cell gets the fixed id ``injected-parameters`` and the ``remove-cell``
  tag (the page's "Re-running this chapter" section states the mode and overrides);
* PNG figures carry no ``Software: Matplotlib x.y.z`` text chunk (``tsode:`` chunks written by
  :mod:`tsode.book.plotting`, e.g. the smallest font size, are kept);
* a notebook with an error, any stderr output, or fewer figures or checked outputs than the
  committed one is not written: it goes to ``_build/failed/<chapter>-<timestamp>.ipynb`` and the
  command exits non-zero.

CHAPTER is a number (``1``), a file stem (``01_odes``) or a path; default: all chapters.
``-p NAME VALUE`` sets a notebook parameter (``seed``) or any setting of the chapter's
experiments (``eta``, ``sigma``, ``N``, ... — see ``tsode.book.chapter.REGISTRY``), which the
runner passes on in the ``overrides`` parameter; the mode is ``--mode``, never ``-p mode``.
Only ``--in-place`` (maintainers: full mode, no parameters) rewrites the committed notebooks.
``build`` renders ``_build/html`` from a staged copy of the book in ``_build/src`` that uses the
executed notebooks of ``_build/notebooks`` where they exist (``--committed``: the committed ones);
the tracked files are never modified. The intro's overview of reproduced results
(:mod:`tsode.book.overview`) takes each chapter's records from the run of the notebook that is
rendered (``run`` installs a chapter's records beside its notebook, replacing only that
chapter's), so a partial re-run keeps the other chapters and is labelled as such. Without a
``repository.url`` in _config.yml the repository buttons are hidden.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["ROOT", "BOOK", "chapters", "resolve", "tidy", "run", "build", "chapter_sources",
           "write_overview", "main"]

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
KERNEL = "python3"
INJECTED_ID = "injected-parameters"
#: Tag that hides the injected cell (its values are stated in "Re-running this chapter").
INJECTED_TAG = "remove-cell"
#: Prefix of the PNG text chunks that tidy keeps (keyword ``tsode:...``).
PNG_KEEP = b"tsode:"


def chapters() -> list[Path]:
    """The chapter notebooks, in order."""
    return sorted(p for p in BOOK.glob("[0-9][0-9]_*.ipynb"))


def resolve(spec: str) -> Path:
    """A chapter notebook from a number, a stem or a path."""
    p = Path(spec)
    if p.suffix == ".ipynb" and p.exists():
        return p.resolve()
    for nb in chapters():
        if spec in (nb.stem, nb.name) or (spec.isdigit() and nb.stem.startswith(f"{int(spec):02d}_")):
            return nb
    names = ", ".join(nb.stem for nb in chapters())
    raise SystemExit(f"unknown chapter {spec!r}; available: {names}")


# ------------------------------------------------------------------------------------------
# tidying
# ------------------------------------------------------------------------------------------
def _strip_png_text(data: bytes) -> bytes:
    """Remove tEXt/iTXt/zTXt/tIME chunks (software version, timestamps) from a PNG, except the
    ``tsode:`` text chunks written by :func:`tsode.book.plotting.show`."""
    sig, rest = data[:8], data[8:]
    if sig != b"\x89PNG\r\n\x1a\n":
        return data
    out = [sig]
    i = 0
    while i < len(rest):
        (length,) = struct.unpack(">I", rest[i : i + 4])
        ctype = rest[i + 4 : i + 8]
        chunk = rest[i : i + 12 + length]
        keep = ctype == b"tEXt" and rest[i + 8 : i + 8 + len(PNG_KEEP)] == PNG_KEEP
        if keep or ctype not in (b"tEXt", b"iTXt", b"zTXt", b"tIME"):
            out.append(chunk)
        i += 12 + length
    return b"".join(out)


def tidy(nb):
    """Make an executed notebook reproducible (in place; returns it).

    Removes papermill/nbclient metadata and timestamps, fixes the injected cell's id and tags it
    ``remove-cell`` (the page states the run's mode and parameters), and strips text chunks other
    than ``tsode:...`` from PNG outputs.
    """
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        md = cell.metadata
        md.pop("papermill", None)
        md.pop("execution", None)
        md.pop("collapsed", None)
        tags = md.get("tags", [])
        if INJECTED_ID in tags:
            cell.id = INJECTED_ID
            tags = [t for t in tags if t != "hide-cell"]
            if INJECTED_TAG not in tags:
                tags.append(INJECTED_TAG)
            md["tags"] = tags
        if not tags and "tags" in md:
            del md["tags"]
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                raw = base64.b64decode(data["image/png"])
                data["image/png"] = base64.b64encode(_strip_png_text(raw)).decode("ascii")
    return nb


def problems(nb) -> list[str]:
    """Errors and stderr outputs in a notebook, as readable strings."""
    out = []
    for i, cell in enumerate(nb.cells):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                out.append(f"cell {i}: error {o.get('ename')}: {o.get('evalue')}")
            elif o.get("output_type") == "stream" and o.get("name") == "stderr":
                out.append(f"cell {i}: stderr: {o.get('text', '')[:300]!r}")
    return out


# ------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------
#: The kernel's environment, whatever the caller's: matplotlib's inline backend (``MPLBACKEND=Agg``
#: on a server would make every figure vanish from the notebook) and a fixed hash seed.
KERNEL_ENV = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", "PYTHONHASHSEED": "0"}
#: The tag of the cells whose printed output nbval compares.
CHECK_TAG = "nbval-check-output"


class ChapterError(Exception):
    """A chapter that cannot be run (e.g. a broken .ipynb); the message names the chapter."""


def counts(nb) -> dict:
    """``figures``: PNG outputs; ``checked``: checked cells with output — what a run must keep."""
    figures = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    checked = sum(bool(c.get("outputs")) for c in nb.cells
                  if CHECK_TAG in c.metadata.get("tags", []))
    return {"figures": figures, "checked": checked}


def lost_outputs(new, reference) -> list[str]:
    """What ``new`` lacks compared with ``reference`` (fewer figures or checked outputs)."""
    a, b = counts(new), counts(reference)
    return [f"{k}: {a[k]} instead of {b[k]} in the committed notebook" for k in a if a[k] < b[k]]


def read_chapter(path: Path):
    """The notebook at ``path``; ChapterError naming the chapter if it is not a valid notebook."""
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except Exception as exc:  # NotJSONError, ValidationError, OSError, ...
        raise ChapterError(f"chapter {path.stem} ({_rel(path)}) is not a readable notebook: "
                           f"{type(exc).__name__}: {str(exc).strip()[:300]}") from None


def failed_path(src: Path) -> Path:
    """``_build/failed/<chapter>-<timestamp>.ipynb``, unique per run."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    folder = ROOT / "_build" / "failed"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1000):
        p = folder / f"{src.stem}-{stamp}{'' if i == 0 else f'-{i}'}.ipynb"
        if not p.exists():
            return p
    raise ChapterError(f"too many failed runs of {src.stem} at {stamp}")  # pragma: no cover


def _papermill(src: Path, out: str, parameters: dict, tmpdir: Path) -> list[str]:
    """Execute ``src`` into ``out``; the errors papermill raised (the notebook holds tracebacks).

    The kernel talks over IPC sockets in ``tmpdir`` (no "TCP without encryption" warning, no
    socket files in the book's folder)."""
    import papermill as pm
    from traitlets.config import Config

    config = Config({"KernelManager": {"transport": "ipc", "ip": str(tmpdir / "kernel-ipc")}})
    try:
        pm.execute_notebook(
            str(src), out, parameters=parameters, kernel_name=KERNEL, cwd=str(src.parent),
            progress_bar={"desc": src.stem} if sys.stderr.isatty() else False, log_output=False,
            report_mode=False, config=config,
        )
    except Exception as exc:
        text = str(exc).strip()
        return [f"{type(exc).__name__}: {text.splitlines()[-1] if text else ''}"]
    return []


def _execute(src: Path, dest: Path, parameters: dict, tmpdir: Path) -> tuple[float, list[str]]:
    """Run one chapter into ``dest`` via a temporary file in ``tmpdir``; (seconds, problems)."""
    import nbformat

    from .pages import DATA_ENV

    reference = read_chapter(src)
    tmp = tmpdir / src.name
    data = tmpdir / f"data-{src.stem}"  # the run's records, installed with the notebook
    t0 = time.perf_counter()
    env = {**KERNEL_ENV, DATA_ENV: str(data)}
    with _environ(env):
        err = _papermill(src, str(tmp), parameters, tmpdir)
    seconds = time.perf_counter() - t0
    try:
        nb = nbformat.read(str(tmp), as_version=4)
    except Exception as exc:
        return seconds, err + [f"chapter {src.stem}: no executed notebook ({type(exc).__name__})"]
    tidy(nb)
    err += problems(nb) + lost_outputs(nb, reference)
    if err:
        failed = failed_path(src)
        nbformat.write(nb, str(failed))
        return seconds, err + [f"(the executed notebook is in {_rel(failed)})"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(tmp))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    _install(tmp, dest)
    _install_records(data / "summary.json", dest.parent / "data" / "summary.json", src.stem)
    return seconds, []


def _install_records(run: Path, summary: Path, stem: str) -> None:
    """Replace the chapter's records in ``summary`` (beside the installed notebook) by those of
    its run: the records always describe the notebook that will be rendered."""
    from .pages import merge_records, read_summary

    chapter = int(stem[:2]) if stem[:2].isdigit() else stem
    merge_records(summary, chapter, read_summary(run))


def _install(tmp: Path, dest: Path) -> None:
    """Move ``tmp`` to ``dest`` atomically; across file systems through ``.<name>.part`` beside
    ``dest``, removed whatever happens (a reader never sees a half-written notebook)."""
    try:
        os.replace(tmp, dest)
        return
    except OSError:
        pass
    part = dest.with_name(f".{dest.name}.part")
    try:
        shutil.copyfile(tmp, part)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


class _environ:
    """Context manager: set environment variables, restore them afterwards."""

    def __init__(self, values: dict):
        self.values, self.saved = values, {}

    def __enter__(self):
        self.saved = {k: os.environ.get(k) for k in self.values}
        os.environ.update(self.values)

    def __exit__(self, *exc):
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _terminate(signum, frame):
    """SIGTERM handler: unwind like Ctrl-C so that temporary files are removed."""
    raise KeyboardInterrupt(f"signal {signum}")


#: The parameters of every chapter's ``parameters`` cell.
NOTEBOOK_PARAMETERS = ("mode", "seed", "overrides")


def notebook_parameters(mode: str, params: dict | None = None) -> dict:
    """Papermill parameters for a run: ``mode``, ``seed``, ``overrides``.

    Any other name (e.g. ``eta``) is a setting of the chapter's experiments
    (:data:`tsode.book.chapter.REGISTRY`) and is moved into the ``overrides`` dict; names that no
    experiment uses are rejected, and so is ``mode`` (it is ``--mode``).
    """
    from .experiments import check_overrides  # the experiments register their settings

    if mode not in ("fast", "full"):
        raise SystemExit(f"--mode must be fast or full, got {mode!r}")
    params = dict(params or {})
    if "mode" in params:
        raise SystemExit(f"-p mode {params['mode']!r} is not a parameter: use --mode fast|full")
    extra = {k: params.pop(k) for k in list(params) if k not in NOTEBOOK_PARAMETERS}
    overrides = {**dict(params.pop("overrides", None) or {}), **extra}
    try:
        overrides = check_overrides(overrides)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    params["mode"] = mode
    if overrides:
        params["overrides"] = overrides
    return params


def destination(mode: str, params: dict, output: str | None, in_place: bool) -> Path | None:
    """The output folder of a run (None: in place). In place needs full mode and no parameters."""
    if in_place:
        if output is not None or mode != "full" or set(params) != {"mode"}:
            raise SystemExit("--in-place rewrites the committed notebooks: only in full mode, "
                             "without -p parameters and without --output")
        return None
    return Path(output).resolve() if output is not None else ROOT / "_build" / "notebooks"


def run(specs=(), mode: str = "full", params: dict | None = None, output: str | None = None,
        in_place: bool = False) -> int:
    """Execute chapters into ``_build/notebooks`` (or ``output``; ``in_place``: the committed
    notebooks); prints a line per chapter and returns the number of failed chapters."""
    import signal

    params = notebook_parameters(mode, params)
    outdir = destination(mode, params, output, in_place)
    nbs = [resolve(s) for s in specs] if specs else chapters()
    old = signal.signal(signal.SIGTERM, _terminate)
    lines, failed = [], 0
    try:
        with tempfile.TemporaryDirectory(prefix="tsode-book-") as tmpdir:
            for i, nb in enumerate(nbs, 1):
                dest = nb if outdir is None else outdir / nb.name
                print(f"[{i}/{len(nbs)}] {nb.stem} ({mode}) ...", file=sys.stderr, flush=True)
                try:
                    seconds, err = _execute(nb, dest, params, Path(tmpdir))
                except ChapterError as exc:
                    seconds, err = 0.0, [str(exc)]
                for e in err:
                    print(f"    {e}", file=sys.stderr)
                failed += bool(err)
                status = "ok    " if not err else "FAILED"
                lines.append(f"{nb.stem:<22} {mode:<5} {seconds:7.1f} s  {status} -> {_rel(dest)}")
    finally:
        signal.signal(signal.SIGTERM, old)
    print("\n".join(lines), flush=True)
    return failed


def _rel(p: Path) -> str:
    try:
        return str(Path(p).relative_to(Path.cwd()))
    except ValueError:
        return str(p)


# ------------------------------------------------------------------------------------------
# building
# ------------------------------------------------------------------------------------------
def stage(committed: bool = False, executed: Path | None = None, dest: Path | None = None) -> Path:
    """Copy the book's sources to ``_build/src`` with the executed notebooks of ``executed``
    (default ``_build/notebooks``) in place of the committed ones where they exist, and the intro's
    overview of reproduced results filled in (:func:`write_overview`). Returns the staged root."""

    src = Path(dest) if dest else ROOT / "_build" / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "book").mkdir(parents=True)
    shutil.copy2(ROOT / "_toc.yml", src / "_toc.yml")
    (src / "_config.yml").write_text(staged_config((ROOT / "_config.yml").read_text()))
    if (ROOT / "_static").is_dir():
        shutil.copytree(ROOT / "_static", src / "_static")
    executed = Path(executed) if executed else ROOT / "_build" / "notebooks"
    for p in BOOK.iterdir():
        if p.name.startswith("."):
            continue
        run_nb = executed / p.name
        origin = run_nb if (p.suffix == ".ipynb" and not committed and run_nb.exists()) else p
        (shutil.copytree if origin.is_dir() else shutil.copy2)(origin, src / "book" / p.name)
    write_overview(src / "book", committed, executed)
    return src


#: The buttons that need ``repository.url`` in _config.yml.
REPOSITORY_BUTTONS = ("use_repository_button", "use_issues_button", "use_edit_page_button")


def staged_config(text: str) -> str:
    """The book's _config.yml for the build: without a ``repository.url`` (empty or absent) the
    repository, issue and edit-page buttons are turned off and the repository section dropped,
    so that no button points at a placeholder; with one, the text is unchanged."""
    import yaml

    config = yaml.safe_load(text) or {}
    if str((config.get("repository") or {}).get("url") or "").strip():
        return text
    config.pop("repository", None)
    html = config.setdefault("html", {})
    html.update({k: False for k in REPOSITORY_BUTTONS})
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


def chapter_sources(committed: bool = False, executed: Path | None = None) -> list[tuple]:
    """Per chapter, the notebook that will be rendered and the summary.json holding its records:
    ``(notebook, summary, origin)``, origin ``"re-run"`` (``executed``, default
    ``_build/notebooks``) or ``"committed"`` (``book/``)."""
    executed = Path(executed) if executed else ROOT / "_build" / "notebooks"
    out = []
    for nb in chapters():
        run_nb = executed / nb.name
        if not committed and run_nb.exists():
            out.append((run_nb, executed / "data" / "summary.json", "re-run"))
        else:
            out.append((nb, BOOK / "data" / "summary.json", "committed"))
    return out


def write_overview(book: Path, committed: bool = False, executed: Path | None = None) -> None:
    """Fill the overview into ``book/intro.md`` (at :data:`tsode.book.overview.INTRO_MARKER`) and
    write the full record list to ``book/reproduced.csv`` and ``book/reproduced.json``, every
    chapter from its :func:`chapter_sources`."""
    import json

    from . import overview
    from .pages import read_summary

    runs, records = [], {}
    for notebook, summary, origin in chapter_sources(committed, executed):
        run = overview.chapter_run(notebook, origin)
        runs.append(run)
        records[run.number] = [r for r in read_summary(summary)
                               if str(r.get("chapter")) == str(run.number)]
    flat = overview.flat_records(runs, records)
    (book / "reproduced.csv").write_text(overview.records_csv(flat))
    (book / "reproduced.json").write_text(json.dumps(flat, indent=1) + "\n")
    intro = book / "intro.md"
    text = overview.overview_markdown(runs, records, ("reproduced.csv", "reproduced.json"))
    intro.write_text(intro.read_text().replace(overview.INTRO_MARKER, text))


def jupyter_book_command() -> list[str]:
    """Jupyter Book's CLI through this interpreter (works when its bin/ is not on PATH)."""
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; "
            "sys.exit(main())"]


def build(path_output: str | None = None, builder: str = "html", committed: bool = False,
          executed: str | None = None) -> int:
    """``jupyter-book build --all -W --keep-going`` of the staged book (see :func:`stage`;
    ``executed``: the folder of executed notebooks, default ``_build/notebooks``)."""
    out = Path(path_output).resolve() if path_output else ROOT
    src = stage(committed, executed=executed, dest=out / "_build" / "src")
    cmd = jupyter_book_command() + ["build", str(src), "--all", "-W", "--keep-going",
                                    "--builder", builder, "--path-output", str(out)]
    print("$ jupyter-book", " ".join(cmd[3:]), flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=src)
    index = (out / "_build" / "html" / "index.html").resolve()
    print(f"build {'ok' if rc == 0 else 'FAILED'} in {time.perf_counter() - t0:.1f} s")
    if rc == 0:
        print(f"open file://{index}")
    return rc


def _value(text: str):
    """A command-line parameter value: Python literal if it parses, else the string."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["long"]:  # the cached long runs: book/specs -> book/data (long_runs.py)
        from .long_runs import main as long_main

        return long_main(argv[1:])
    parser = argparse.ArgumentParser(prog="tsode book", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="execute chapter notebooks with papermill into _build/notebooks")
    r.add_argument("chapters", nargs="*", metavar="CHAPTER", help="number, stem or path (default: all)")
    r.add_argument("--mode", default="full", choices=["fast", "full"])
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="notebook parameter or setting (e.g. -p seed 3)")
    where = r.add_mutually_exclusive_group()
    where.add_argument("--output", help="folder for the executed notebooks (default _build/notebooks)")
    where.add_argument("--in-place", action="store_true",
                       help="maintainers: rewrite the committed notebooks (full mode, no -p)")
    b = sub.add_parser("build", help="build the HTML book into _build/html (jupyter-book -W)")
    b.add_argument("--path-output", help="build into PATH/_build instead of the repository")
    b.add_argument("--committed", action="store_true",
                   help="render the committed notebooks, not those of _build/notebooks")
    sub.add_parser("list", help="list the chapters")
    sub.add_parser("long", help="compute the cached long runs (long --help)")
    args = parser.parse_args(argv)
    if args.command == "run":
        params = {k: _value(v) for k, v in args.parameter}
        try:
            return 1 if run(args.chapters, args.mode, params, args.output, args.in_place) else 0
        except KeyboardInterrupt:
            print("interrupted; no notebook was written for the chapter in progress", file=sys.stderr)
            return 130
    if args.command == "build":
        return build(args.path_output, committed=args.committed)
    for nb in chapters():
        print(nb.stem)
    return 0
