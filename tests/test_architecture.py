"""Structural checks of the package (issue 10): lazy compilation, unit sizes.

Start-up *time* is measured by ``benchmarks/import_time.py``, never asserted here; these tests
check the structure that makes it small: importing tsode compiles (or loads from the numba cache)
no kernel, and a call compiles only the kernels it uses.
"""

import ast
import json
import os
import pathlib
import subprocess
import sys

_PROBE = r"""
import json, sys
import tsode
from numba.core.dispatcher import Dispatcher
from numba.np.ufunc.gufunc import GUFunc

def compiled():
    '''Names of the numba dispatchers / gufuncs of tsode that hold compiled code.'''
    out = []
    for name, mod in sorted(sys.modules.items()):
        if not name.startswith("tsode"):
            continue
        for attr, obj in vars(mod).items():
            if isinstance(obj, Dispatcher) and obj.overloads:
                out.append(f"{name}.{attr}")
            elif isinstance(obj, GUFunc):
                out.append(f"{name}.{attr} (gufunc)")
    return sorted(set(out))

after_import = compiled()
built_at_import = sorted(tsode.activations.BUILT)
import numpy as np
tsode.activation("erf").I2(np.eye(2))
print(json.dumps(dict(after_import=after_import, built_at_import=built_at_import,
                      built_after_I2=sorted(tsode.activations.BUILT),
                      after_I2=compiled())))
"""


def test_import_compiles_no_kernel_and_a_call_only_what_it_uses(tmp_path):
    """As after a fresh install: an empty numba cache (NUMBA_CACHE_DIR), so every kernel a call
    needs is compiled and shows up as a compiled dispatcher."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True, env=env)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["after_import"] == [], f"compiled at import: {r['after_import']}"
    assert r["built_at_import"] == []
    # one erf I2 call builds exactly the two-point gufunc (I2 and J2) and compiles only its
    # callees: nothing of I3/I4, the ReLU I4 quadrature, the simulators' step loops or the
    # elementwise g
    assert r["built_after_I2"] == ["pair"]
    i2_callees = {f"_{act}_{f}" for act in ("erf", "relu", "linear") for f in ("I2", "J2")}
    i2_callees |= {"_asin", "_corr", "_orthant2"}
    assert r["after_I2"] and {n.split(".")[-1] for n in r["after_I2"]} <= i2_callees, r["after_I2"]
    assert {p.suffix for p in tmp_path.rglob("*.nb*")} == {".nbi", ".nbc"}  # cached on disk


# --------------------------------------------------------------------------------------------
# Unit sizes: no function over 80 lines, no engine module over 600 lines (tsode/book/ has one,
# experiments.py, that another change restructures)
# --------------------------------------------------------------------------------------------

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "tsode"
MAX_FUNCTION_LINES = 80
MAX_MODULE_LINES = 600


def _engine_modules():
    """tsode/**/*.py except tsode/book/ (the paper's experiments, figures and runner, restructured
    separately): the engines, the asymptotic analysis and the sweeps."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "book" not in p.relative_to(PACKAGE).parts)


def _long_functions(path, limit):
    """``file:line name (n lines)`` of each function of ``path`` whose body exceeds ``limit``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            # the body from the line after the signature to the last line (docstring included)
            n = node.end_lineno - node.body[0].lineno + 1
            if n > limit:
                where = path.relative_to(PACKAGE) if path.is_relative_to(PACKAGE) else path.name
                yield f"{where}:{node.lineno} {node.name} ({n} lines)"


def test_no_function_over_80_lines():
    """Everywhere in tsode/, tsode/book/ included (it passes there too)."""
    bad = [f for p in sorted(PACKAGE.rglob("*.py")) for f in _long_functions(p, MAX_FUNCTION_LINES)]
    assert not bad, "functions longer than 80 lines: " + "; ".join(bad)


def test_no_engine_module_over_600_lines():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines())
             for p in _engine_modules()}
    bad = {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not bad, f"modules longer than {MAX_MODULE_LINES} lines: {bad}"


def test_size_checks_can_fail(tmp_path):
    """Power: the checker flags a synthetic function with an 81-line body, nested too."""
    probe = tmp_path / "probe.py"
    probe.write_text("class A:\n    def f(self):\n" + "        x = 1\n" * 81)
    assert list(_long_functions(probe, MAX_FUNCTION_LINES)) == ["probe.py:2 f (81 lines)"]
    assert not list(_long_functions(probe, 81))
