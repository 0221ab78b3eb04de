"""Issue 22's timings: a second sweep on a locked output, dry runs, Ctrl-C.

    PYTHONPATH=. python benchmarks/sweep_safety.py

Prints, for the real command line (``python -m tsode``): the wall and CPU seconds of a second
sweep refused by the lock of a running one; of ``--dry-run`` on a K = 100, 10 x 10 grid; the
seconds from SIGINT to the exit of a running sweep; and the in-process seconds of
``load_spec`` + ``estimate`` for 1000 x 200 tasks.
"""

import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tsode.sweeps import load_spec
from tsode.sweeps.spec import estimate

TSODE = [sys.executable, "-m", "tsode"]
ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
SLOW = """[setup]
eta = [0.1, 0.2]
sigma = 0.1
[network]
M = 2
K = [2, 3, 4, 5]
[run]
engine = "reduced"
N = 1000
runs = 24
alpha_max = 100.0
"""


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed_cli(*args):
    t0, c0 = time.monotonic(), children_cpu()
    res = subprocess.run([*TSODE, *map(str, args)], env=ENV, capture_output=True, text=True,
                         timeout=120)
    return res, time.monotonic() - t0, children_cpu() - c0


def wait_for(predicate, timeout=120):
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError
        time.sleep(0.05)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec, out = tmp / "slow.toml", tmp / "out.nc"
        spec.write_text(SLOW)
        first = subprocess.Popen([*TSODE, "sweep", str(spec), "-o", str(out), "--workers", "1",
                                  "--no-progress"], env=ENV, stderr=subprocess.DEVNULL)
        try:
            wait_for((tmp / "out.nc.parts" / "spec.json").exists)
            res, wall, cpu = timed_cli("sweep", spec, "-o", out, "--overwrite")
            print(f"second sweep on a locked output: exit {res.returncode} after {wall:.2f} s "
                  f"wall, {cpu:.2f} s CPU: {res.stderr.strip()}")
            wait_for(lambda: len(list((tmp / "out.nc.parts").glob("*.npz"))) >= 1)
            t0 = time.monotonic()
            first.send_signal(signal.SIGINT)
            first.wait(timeout=60)
            print(f"Ctrl-C: exit {first.returncode} after {time.monotonic() - t0:.2f} s")
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()

        etas = ", ".join(str(0.1 * i) for i in range(1, 11))
        Ns = ", ".join(str(1000 * i) for i in range(1, 11))
        k100 = tmp / "k100.toml"
        k100.write_text(f"[setup]\neta = [{etas}]\n[network]\nM = 2\nK = 100\n[run]\n"
                        f"engine = 'reduced'\nN = [{Ns}]\nruns = 4\nalpha_max = 100.0\n")
        res, wall, cpu = timed_cli("sweep", "--dry-run", k100)
        print(f"--dry-run, K = 100, 10 x 10 grid: exit {res.returncode} after {wall:.2f} s wall, "
              f"{cpu:.2f} s CPU; {res.stdout.splitlines()[-1]}")
        res, wall, cpu = timed_cli("--help")
        print(f"(python -m tsode --help: {wall:.2f} s wall, {cpu:.2f} s CPU)")

    t0 = time.perf_counter()
    big = load_spec(dict(setup=dict(eta=[0.001 * i for i in range(1, 1001)]),
                         network=dict(M=2, K=list(range(1, 201))),
                         run=dict(engine="reduced", N=500, runs=3, alpha_max=10.0)))
    cost = estimate(big)
    print(f"load_spec + estimate of {cost.n_tasks} tasks: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
