"""Execute and build the book.

Usage::

    python -m tsode.book run [--mode fast|full] [-p NAME VALUE ...] [--output DIR] [CHAPTER ...]
    python -m tsode.book build
    python -m tsode.book list

(or ``tsode book ...``). ``run`` executes chapter notebooks with papermill (kernel ``python3``,
working directory = the notebook's folder) and tidies the result so that committed notebooks are
byte-stable when re-run:

* papermill's and nbclient's metadata and timestamps are removed;
* the injected-parameters cell gets the fixed id ``injected-parameters`` and the ``hide-cell``
  tag (Jupyter Book shows it collapsed);
* PNG figures carry no ``Software: Matplotlib x.y.z`` text chunk;
* a notebook with an error or any stderr output is not written in place (it goes to
  ``_build/failed/``) and the command exits non-zero.

CHAPTER is a number (``1``), a file stem (``01_odes``) or a path; default: all chapters.
``-p NAME VALUE`` sets a notebook parameter (``seed``) or any setting of the chapter's
experiments (``eta``, ``sigma``, ``N``, ... — see ``tsode.book.experiments.SETTINGS``), which the
runner passes on in the ``overrides`` parameter.
The full mode with no extra parameters writes the notebooks in place (these are the committed
outputs); any other run writes to ``_build/notebooks/`` unless ``--output`` is given.
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

__all__ = ["ROOT", "BOOK", "chapters", "resolve", "tidy", "run", "build", "main"]

ROOT = Path(__file__).resolve().parents[2]
BOOK = ROOT / "book"
KERNEL = "python3"
INJECTED_ID = "injected-parameters"


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
    """Remove tEXt/iTXt/zTXt/tIME chunks (software version, timestamps) from a PNG."""
    sig, rest = data[:8], data[8:]
    if sig != b"\x89PNG\r\n\x1a\n":
        return data
    out = [sig]
    i = 0
    while i < len(rest):
        (length,) = struct.unpack(">I", rest[i : i + 4])
        ctype = rest[i + 4 : i + 8]
        chunk = rest[i : i + 12 + length]
        if ctype not in (b"tEXt", b"iTXt", b"zTXt", b"tIME"):
            out.append(chunk)
        i += 12 + length
    return b"".join(out)


def tidy(nb):
    """Make an executed notebook reproducible (in place; returns it).

    Removes papermill/nbclient metadata and timestamps, fixes the injected cell's id and tags it
    ``hide-cell``, and strips text chunks from PNG outputs.
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
            if "hide-cell" not in tags:
                tags.append("hide-cell")
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
def _execute(src: Path, dest: Path, parameters: dict) -> tuple[float, list[str]]:
    import nbformat
    import papermill as pm

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".ipynb", prefix=f".{src.stem}-", dir=dest.parent)
    os.close(fd)
    t0 = time.perf_counter()
    err = []
    try:
        pm.execute_notebook(
            str(src), tmp, parameters=parameters, kernel_name=KERNEL, cwd=str(src.parent),
            progress_bar=False, log_output=False, report_mode=False,
        )
    except Exception as exc:  # papermill re-raises cell errors; the notebook holds the traceback
        err.append(f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}")
    seconds = time.perf_counter() - t0
    nb = nbformat.read(tmp, as_version=4)
    tidy(nb)
    err += problems(nb)
    if err:
        failed = ROOT / "_build" / "failed" / src.name
        failed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(failed))
        os.unlink(tmp)
        err.append(f"(the executed notebook is in {failed})")
    else:
        nbformat.write(nb, tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600 files
        os.replace(tmp, dest)
    return seconds, err


#: The parameters of every chapter's ``parameters`` cell.
NOTEBOOK_PARAMETERS = ("mode", "seed", "overrides")


def notebook_parameters(mode: str, params: dict | None = None) -> dict:
    """Papermill parameters for a run: ``mode``, ``seed``, ``overrides``.

    Any other name (e.g. ``eta``) is a setting of the chapter's experiments
    (:data:`tsode.book.experiments.SETTINGS`) and is moved into the ``overrides`` dict; names that no
    experiment uses are rejected.
    """
    from .experiments import check_overrides

    if mode not in ("fast", "full"):
        raise SystemExit(f"--mode must be fast or full, got {mode!r}")
    params = dict(params or {})
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


def run(specs=(), mode: str = "full", params: dict | None = None, output: str | None = None) -> int:
    """Execute chapters; returns the number of failed chapters."""
    params = notebook_parameters(mode, params)
    nbs = [resolve(s) for s in specs] if specs else chapters()
    if output is not None:
        outdir = Path(output).resolve()
    elif mode == "full" and set(params) == {"mode"}:
        outdir = None  # in place: these are the committed outputs
    else:
        outdir = ROOT / "_build" / "notebooks"
    os.environ.setdefault("PYTHONHASHSEED", "0")
    failed, total = 0, 0.0
    for nb in nbs:
        dest = nb if outdir is None else outdir / nb.name
        seconds, err = _execute(nb, dest, params)
        total += seconds
        status = "ok" if not err else "FAILED"
        print(f"{nb.stem:<22} {mode:<5} {seconds:7.1f} s  {status}  -> {_rel(dest)}", flush=True)
        for e in err:
            print(f"    {e}", file=sys.stderr)
        failed += bool(err)
    print(f"{'total':<22} {mode:<5} {total:7.1f} s")
    return failed


def _rel(p: Path) -> str:
    try:
        return str(p.relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def build(path_output: str | None = None, builder: str = "html") -> int:
    """``jupyter-book build . --all -W --keep-going`` from the repository root."""
    exe = shutil.which("jupyter-book") or shutil.which("jb")
    cmd = [exe] if exe else [sys.executable, "-m", "jupyter_book"]
    cmd += ["build", str(ROOT), "--all", "-W", "--keep-going", "--builder", builder]
    if path_output:
        cmd += ["--path-output", str(path_output)]
    print("$", " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=ROOT)
    out = Path(path_output) if path_output else ROOT
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
    r = sub.add_parser("run", help="execute chapter notebooks with papermill")
    r.add_argument("chapters", nargs="*", metavar="CHAPTER", help="number, stem or path (default: all)")
    r.add_argument("--mode", default="full", choices=["fast", "full"])
    r.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"), help="extra notebook parameter (e.g. -p seed 3)")
    r.add_argument("--output", help="folder for the executed notebooks")
    b = sub.add_parser("build", help="build the HTML book (jupyter-book build . --all -W)")
    b.add_argument("--path-output", help="build into PATH/_build instead of the repository")
    sub.add_parser("list", help="list the chapters")
    sub.add_parser("long", help="compute the cached long runs (long --help)")
    args = parser.parse_args(argv)
    if args.command == "run":
        params = {k: _value(v) for k, v in args.parameter}
        return 1 if run(args.chapters, args.mode, params, args.output) else 0
    if args.command == "build":
        return build(args.path_output)
    for nb in chapters():
        print(nb.stem)
    return 0


