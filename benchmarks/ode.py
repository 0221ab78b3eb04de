"""Wall times and peak memory of the adaptive ODE engine.

    python benchmarks/ode.py            # all cases
    python benchmarks/ode.py --quick    # skip K = 50
    python benchmarks/ode.py --process  # part 3 only

Part 1 (issue 2 targets on a 2-core machine), best of a few repeats after one warm-up call:

1. erf, M=2, K=5, eta=0.5, sigma=0.1, first layer only, random state (N=1000), to alpha=1e4
   (target <= 0.5 s; the authors' C++ fixed-step Euler code needs ~13 s);
2. the same for ReLU (target <= 10x the erf time);
3. erf, K=10, M=2, both layers, to alpha=1e4 (target <= 5 s).

Part 2 (issue 9, large K): erf K = 10, 20, 50 (eta = 0.5) and ReLU K = 10 (eta = 0.2: 0.5
diverges), M = 2, first layer,
random state (N = 1000, seed 0), to alpha = 1e3. Each case runs in a fresh subprocess, which
prints its integration time (wall and CPU: on a shared machine the CPU time is the stable one)
and its peak resident memory (``resource.getrusage`` maxrss, the
whole process: Python, numpy, numba included). Target for erf K = 50: <= 2 GiB and <= 119 s
(a quarter of the 476 s measured before the blocked Jacobian, with a 20.5 GiB peak).

Part 3 (issue 10): the whole-process wall time of the erf K = 5 run of part 1 (one call to
alpha = 1e4), ``import tsode`` included, measured from outside the process (median of 5, after
one run that fills the numba cache and writes bytecode as an installed package has it), next to
the bare interpreter with ``import numba, scipy.integrate``.
"""

import json
import os
import statistics
import subprocess
import sys
import time

_CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import tsode
K, act, alpha_max = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
state0 = tsode.initial_state(K, 2, "random", N=1000, seed=0)
setup = tsode.Setup(act, eta=0.5 if act == "erf" else 0.2)
t1, c1 = time.perf_counter(), time.process_time()
traj = tsode.integrate(state0, setup, alpha_max)
t2, c2 = time.perf_counter(), time.process_time()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
print(json.dumps(dict(seconds=t2 - t1, cpu=c2 - c1, import_and_setup=t1 - t0, peak=peak,
                      nfev=traj.info["nfev"], njev=traj.info["njev"], eg=float(traj.eg[-1]))))
"""


_JAC_CHILD = r"""
import json, resource, sys, time
import tsode
from tsode.ode import Drift
K = int(sys.argv[1])
state0 = tsode.initial_state(K, 2, "random", N=1000, seed=0)
f = Drift.from_state(state0, tsode.Setup("erf", eta=0.5))
y = f.pack_state(state0)
out = {}
for central in (False, True):
    t, c = time.perf_counter(), time.process_time()
    f.jacobian(0.0, y, central=central)
    out["central" if central else "forward"] = (time.perf_counter() - t, time.process_time() - c)
out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""


def jacobians(Ks=(10, 20, 50)):
    """One forward and one central Jacobian of the erf drift (M = 2), fresh process per K
    (the first call includes building the column index lists)."""
    print("\nJacobian of the drift (erf, M=2), one process per K:")
    print(f"{'K':>4} {'forward wall/cpu [s]':>22} {'central wall/cpu [s]':>22} {'peak [MiB]':>11}")
    for K in Ks:
        out = subprocess.run([sys.executable, "-c", _JAC_CHILD, str(K)], capture_output=True,
                             text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        fw, ce = r["forward"], r["central"]
        print(f"{K:>4} {fw[0]:11.2f} /{fw[1]:8.2f} {ce[0]:11.2f} /{ce[1]:8.2f} "
              f"{r['peak'] / 2**20:11.0f}", flush=True)


def best_time(state0, setup, alpha_max, repeats=3):
    import tsode

    tsode.integrate(state0, setup, 1.0)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        traj = tsode.integrate(state0, setup, alpha_max)
        times.append(time.perf_counter() - t0)
    return min(times), traj


def small_cases():
    import tsode

    cases = [
        ("erf  K=5  M=2 first layer", 5, "erf", 0.0, "ones"),
        ("relu K=5  M=2 first layer", 5, "relu", 0.0, "ones"),
        ("erf  K=10 M=2 both layers", 10, "erf", 0.5, "normal"),
    ]
    results = {}
    for label, K, act, eta_v, v in cases:
        state0 = tsode.initial_state(K, 2, "random", N=1000, seed=0, v=v, v_star=v)
        setup = tsode.Setup(act, eta=0.5, eta_v=eta_v, sigma=0.1)
        seconds, traj = best_time(state0, setup, 1e4)
        results[label] = seconds
        print(
            f"{label}: {seconds:7.3f} s to alpha=1e4  (rhs evaluations {traj.info['nfev']}, "
            f"jacobians {traj.info['njev']}, final eps_g {traj.eg[-1]:.4g})"
        )
    ratio = results["relu K=5  M=2 first layer"] / results["erf  K=5  M=2 first layer"]
    print(f"relu / erf time ratio: {ratio:.1f}")


def large_case(K, act, alpha_max=1e3):
    """Run one case in a fresh process; returns the dict its child prints."""
    out = subprocess.run([sys.executable, "-c", _CHILD, str(K), act, str(alpha_max)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def large_cases(Ks):
    print("\nlarge K (M=2, eta=0.5 erf / 0.2 relu, first layer, alpha_max=1e3), one process per case:")
    print(f"{'case':>12} {'time [s]':>10} {'cpu [s]':>9} {'peak [MiB]':>11} {'nfev':>7} "
          f"{'njev':>5}")
    for K, act in Ks:
        r = large_case(K, act)
        print(f"{act + ' K=' + str(K):>12} {r['seconds']:10.2f} {r['cpu']:9.2f} "
              f"{r['peak'] / 2**20:11.0f} "
              f"{r['nfev']:7d} {r['njev']:5d}", flush=True)


def _process_seconds(code, repeats=5):
    """Median wall time of ``python -c code`` as a whole process (bytecode written as pip does,
    even where PYTHONDONTWRITEBYTECODE is set)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)  # warm the caches
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def whole_process():
    code = ("import tsode; s = tsode.initial_state(5, 2, 'random', N=1000, seed=0); "
            "tsode.integrate(s, tsode.Setup('erf', eta=0.5, sigma=0.1), 1e4)")
    run = _process_seconds(code)
    deps = _process_seconds("import numba, scipy.integrate")
    print(f"\nwhole process, median of 5: import tsode + erf K=5 to alpha=1e4: {run:.2f} s; "
          f"python -c 'import numba, scipy.integrate': {deps:.2f} s")


def main():
    quick = "--quick" in sys.argv
    if "--process" in sys.argv:
        return whole_process()
    small_cases()
    cases = [(10, "erf"), (20, "erf")] + ([] if quick else [(50, "erf")]) + [(10, "relu")]
    large_cases(cases)
    jacobians((10, 20) if quick else (10, 20, 50))
    whole_process()


if __name__ == "__main__":
    main()
