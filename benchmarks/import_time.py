"""Warm start-up cost of ``import tsode`` against its own dependencies (issue 10, item 6).

    python benchmarks/import_time.py          # 9 fresh processes per command
    python benchmarks/import_time.py 21       # more repeats on a noisy machine

Each sample is one fresh interpreter that times its import statement with ``time.perf_counter``
(interpreter start-up excluded, the same for both): ``import tsode`` against ``import numba,
scipy.integrate`` — the two heavy dependencies every engine needs. The two commands alternate, so
a change in the machine's load hits both alike. Prints the medians and their ratio (target:
<= 1.15, i.e. tsode's own work on top of its dependencies is small). One unmeasured run first
fills the numba on-disk cache and writes tsode's bytecode ("warm" import).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys

_TIMED = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
#: Bytecode is written and read as for an installed package (pip compiles it), even where the
#: environment sets PYTHONDONTWRITEBYTECODE (which would re-compile tsode's sources every time).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
COMMANDS = {"tsode": "tsode", "numba + scipy.integrate": "numba, scipy.integrate"}


def sample(modules: str) -> float:
    """Seconds one fresh process spends in ``import <modules>``."""
    out = subprocess.run([sys.executable, "-c", _TIMED.format(modules)], capture_output=True,
                         text=True, check=True, env=_ENV)
    return float(out.stdout.strip().splitlines()[-1])


def main(repeats: int = 9) -> None:
    sample("tsode")  # warm the disk caches (numba, __pycache__)
    times = {name: [] for name in COMMANDS}
    for _ in range(repeats):
        for name, modules in COMMANDS.items():
            times[name].append(sample(modules))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    for name, ts in times.items():
        print(f"import {name:<24} median {med[name]:.3f} s  (min {min(ts):.3f}, max {max(ts):.3f},"
              f" {len(ts)} processes)")
    print(f"ratio tsode / (numba + scipy.integrate): "
          f"{med['tsode'] / med['numba + scipy.integrate']:.2f}  (target <= 1.15)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 9)
