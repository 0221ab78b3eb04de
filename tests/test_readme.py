"""The README's Python examples run as written: each ```python block is saved as a script and
run with the interpreter in a fresh folder (as a reader copying it would), within a time bound.

A block preceded by a ``<!-- not run in tests: REASON -->`` line is not run (the SLURM example
needs a cluster); the test names how many such blocks there are, so none is dropped silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Seconds a README example may take (each runs in seconds once numba's cache is warm; the
#: bound leaves room for a first compilation on a loaded 2-core machine).
TIME_BOUND = 240
NOT_RUN = "<!-- not run in tests:"


def python_blocks(text: str) -> list[tuple[str, bool]]:
    """(code, run?) of every ```python block of a markdown text, in order."""
    out = []
    for m in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.S | re.M):
        before = text[:m.start()].rstrip().splitlines()[-1:] or [""]
        out.append((m.group(1), not before[0].startswith(NOT_RUN)))
    return out


BLOCKS = python_blocks((ROOT / "README.md").read_text())
RUN = [code for code, run in BLOCKS if run]


def test_readme_blocks_are_found_and_only_the_cluster_one_is_skipped():
    assert len(BLOCKS) >= 3, "quick start, sweep and SLURM examples"
    skipped = [code for code, run in BLOCKS if not run]
    assert len(skipped) == 1 and "SLURMCluster" in skipped[0]
    assert python_blocks("x\n" + NOT_RUN + " r -->\n```python\na = 1\n```\n```python\nb\n```\n") \
        == [("a = 1\n", False), ("b\n", True)]


@pytest.mark.parametrize("code", RUN, ids=[f"block{i}" for i in range(len(RUN))])
def test_readme_python_block_runs_as_a_script(code, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIME_BOUND)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip(), "every example prints its result"


def test_quick_start_compares_ode_and_sgd_at_the_same_alpha():
    """The quick start's two engines run to the same alpha (issue 23: 1e4 against 100 read as a
    10x disagreement)."""
    quick = RUN[0]
    assert "alpha_max=alpha" in quick.split("integrate(")[1].split("\n")[0]
    assert "alpha_max=alpha" in quick.split("simulate(")[1].split("\n")[0]


def test_sweep_example_guards_the_process_pool():
    sweep = next(code for code in RUN if "tsode.sweep(" in code)
    guard = sweep.index('if __name__ == "__main__":')
    assert sweep.index("tsode.sweep(") > guard


def _run_with_a_terminal(code: str, env: dict, cwd: Path) -> str:
    """Run ``code`` with stderr on a pseudo-terminal (as in a shell); returns what it wrote."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=slave,
                            stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=TIME_BOUND)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-2000:]
    return b"".join(chunks).decode(errors="replace")


def test_first_compilation_says_so_once_and_a_cached_run_is_silent(tmp_path):
    """The first run on a machine prints one line while numba compiles the kernels; the next
    run loads them from numba's cache and prints nothing (fresh NUMBA_CACHE_DIR)."""
    from tsode._compile_notice import MESSAGE

    code = ("import tsode\n"
            "s = tsode.initial_state(K=2, M=2, kind='random', N=100, seed=0)\n"
            "tsode.simulate(s, tsode.Setup(activation='erf', eta=0.5), N=100, alpha_max=0.5,"
            " engine='reduced', seed=0)\nprint('done')\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    first = _run_with_a_terminal(code, env, tmp_path)
    assert first.count(MESSAGE) == 1 and "done" in first, first
    second = _run_with_a_terminal(code, env, tmp_path)
    assert MESSAGE not in second and "done" in second, second
    # no terminal (a notebook kernel, a pipe): no line, as stderr output fails a chapter run
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=TIME_BOUND,
                          env={**env, "NUMBA_CACHE_DIR": str(tmp_path / "cache2")})
    assert proc.returncode == 0 and MESSAGE not in proc.stderr
