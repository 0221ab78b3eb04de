"""Scaling of tsode with the width K: the ODE drift, the ODE integration, the exact chain.

    python benchmarks/scale.py            # everything (the K = 100 ODE takes ~1-2 min quiet)
    python benchmarks/scale.py --quick    # no K = 100 ODE, no K = 200 drift, shorter chains
    python benchmarks/scale.py --chain    # only the chain against the naive yardstick

Prints markdown tables (the README's scaling section quotes them) and the load average, which
decides whether wall times mean anything: on a shared machine compare the CPU column, and the
ratios measured in the same run.

1. **Drift** (erf, M = 4, first layer, random state N = 1000 seed 0): one evaluation, best of
   a few, wall and process CPU time (both threads), next to the per-integral path that was the
   drift before issue 21 (index tuples materialised; K <= 50, beyond it needs > 1 GB); peak
   resident memory of a fresh process doing one evaluation. Fitted exponent of the wall time
   in K over K >= 20 (the I4 sums cost ~K^2 (K+M)^2 / 4 integrals: exponent -> 4).
2. **ODE** (same network, eta = 0.5) to alpha = 10 with the default solver (LSODA, rtol 1e-8):
   wall and CPU time, drift evaluations, Jacobians (0: LSODA never judged the problem stiff,
   the justification of the solver at large K), peak memory, in a fresh process per K.
3. **Chain** (reduced engine, erf, first layer, 64 runs, default threads): run-steps/s against
   K (M = 2, N = 1000) and N (K = 4, M = 2); fitted exponent in K+M.
4. **Naive yardstick** (issue 21): the reduced engine (erf K = 4, M = 2, first layer,
   N = 1000, 64 runs, default threads) against an independent naive one-thread chain (numba,
   a new ``np.linalg.cholesky`` per step, one run at a time) measured in the same process,
   alternated twice; target >= 6x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
from numba import njit

import tsode
from tsode.ode import Drift


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def slope(ks, ts) -> float:
    """Least-squares exponent of ts ~ ks^p."""
    return float(np.polyfit(np.log(ks), np.log(ts), 1)[0])


def drift_case(K, M=4):
    state = tsode.initial_state(K, M, "random", N=1000, seed=0)
    f = Drift.from_state(state, tsode.Setup("erf", eta=0.5))
    return f, f.pack_state(state)


def time_call(fn, repeat):
    """(best wall, CPU of that call) over ``repeat`` calls after one warm-up call."""
    fn()
    best = (np.inf, np.inf)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best


_CHILD = r"""
import json, resource, sys, time
import tsode
from tsode.ode import Drift
what, K = sys.argv[1], int(sys.argv[2])
state = tsode.initial_state(K, 4, "random", N=1000, seed=0)
setup = tsode.Setup("erf", eta=0.5)
f = Drift.from_state(state, setup)
f(0.0, f.pack_state(state))  # compile / load the cache
out = {}
if what == "ode":
    t0, c0 = time.perf_counter(), time.process_time()
    traj = tsode.integrate(state, setup, 10.0)
    out = dict(seconds=time.perf_counter() - t0, cpu=time.process_time() - c0,
               nfev=traj.info["nfev"], njev=traj.info["njev"])
out["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps(out))
"""


def child(what, K):
    res = subprocess.run([sys.executable, "-c", _CHILD, what, str(K)], capture_output=True,
                         text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def header(title, *cols):
    print(f"\n### {title}\n")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))


def print_exponent(ks, walls):
    big = [i for i, K in enumerate(ks) if K >= 20]
    if len(big) >= 2:
        print(f"\nfitted exponent of the wall time in K (K >= 20): "
              f"{slope(np.array(ks)[big], np.array(walls)[big]):.2f}")


def drift_table(ks):
    header("Drift: one evaluation (erf, M = 4, first layer)", "K", "I4 integrals", "wall (s)",
           "CPU (s)", "per-integral path, wall (s)", "peak RSS (MB)")
    walls = []
    for K in ks:
        f, y = drift_case(K)
        wall, cpu = time_call(lambda: f(0.0, y), 1 if K >= 150 else 3)
        walls.append(wall)
        old = "–"
        if K <= 50:
            Q, R, v = f.unpack(y)
            C = f.covariance(Q, R)
            old = f"{time_call(lambda: f.combine(Q, R, v, f.integrals(C)), 3)[0]:.4f}"
        n = K + 4
        peak = child("drift", K)["peak"] / 2**20
        print(f"| {K} | {f.n_q * n * (n + 1) // 2:,} | {wall:.4f} | {cpu:.4f} | {old} | "
              f"{peak:.0f} |", flush=True)
    print_exponent(ks, walls)


def ode_table(ks):
    header("ODE to alpha = 10 (erf, M = 4, eta = 0.5, LSODA rtol 1e-8)", "K", "wall (s)",
           "CPU (s)", "drift evaluations", "Jacobians", "peak RSS (MB)")
    walls = []
    for K in ks:
        r = child("ode", K)
        walls.append(r["seconds"])
        print(f"| {K} | {r['seconds']:.2f} | {r['cpu']:.2f} | {r['nfev']} | {r['njev']} | "
              f"{r['peak'] / 2**20:.0f} |", flush=True)
    print_exponent(ks, walls)


def chain_rate(K, M, N, alpha, runs=64):
    """(wall, CPU) run-steps/s of the reduced engine, best of 2, after a compile call."""
    state0 = tsode.initial_state(K, M, "random", N=N, seed=1)
    setup = tsode.Setup("erf", eta=0.5)
    kw = dict(N=N, engine="reduced", n_runs=runs)
    tsode.simulate(state0, setup, alpha_max=max(2 / N, 1e-6), **kw)
    best = (0.0, 0.0)
    for rep in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        traj = tsode.simulate(state0, setup, alpha_max=alpha, seed=rep, **kw)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        work = traj.info["steps"] * runs
        best = max(best, (work / wall, work / cpu))
    return best


def chain_table(f):
    header("Exact chain (reduced engine, erf, first layer, 64 runs, default threads)", "K", "M",
           "N", "run-steps/s (wall)", "run-steps/s per CPU-second")
    ns, rates = [], []
    for K in (4, 8, 16, 32):
        steps = int(2e5 * f * 36 / (K + 2) ** 2)
        wall, cpu = chain_rate(K, 2, 1000, steps / 1000)
        ns.append(K + 2)
        rates.append(cpu)
        print(f"| {K} | 2 | 1000 | {wall:,.0f} | {cpu:,.0f} |", flush=True)
    for N in (100, 10**6):
        wall, cpu = chain_rate(4, 2, N, 2e5 * f / N)
        print(f"| 4 | 2 | {N} | {wall:,.0f} | {cpu:,.0f} |", flush=True)
    print(f"\nfitted exponent of the CPU cost per run-step in K+M (K+M = 6..34): "
          f"{-slope(np.array(ns), np.array(rates)):.2f}")


@njit(cache=True)
def naive_chain(G, v, vs, K, N, eta, rng, n_steps):
    """The naive exact chain of one run (erf, first layer): per step a new Cholesky factor of G
    (LAPACK), z ~ N(0, I_n), s = |z|^2 + chi2(N - n), u = L z, then the SGD update of G."""
    n = G.shape[0]
    for _ in range(n_steps):
        L = np.linalg.cholesky(G)
        z = np.empty(n)
        for j in range(n):
            z[j] = rng.standard_normal()
        u = L @ z
        s = z @ z + rng.chisquare(N - n)
        phi = 0.0
        for k in range(K):
            phi += v[k] * math.erf(u[k] / math.sqrt(2.0))
        y = 0.0
        for m in range(n - K):
            y += vs[m] * math.erf(u[K + m] / math.sqrt(2.0))
        d = phi - y
        c = np.empty(K)
        for k in range(K):
            c[k] = -eta * v[k] * math.sqrt(2.0 / math.pi) * math.exp(-0.5 * u[k] ** 2) * d
        for k in range(K):
            for j in range(n):
                if j < K:
                    G[k, j] += (c[k] * u[j] + c[j] * u[k]) / N + c[k] * c[j] * s / N**2
                else:
                    G[k, j] += c[k] * u[j] / N
                    G[j, k] = G[k, j]
    return G


def naive_rate(n_steps, runs=4):
    """(wall, CPU) steps/s of the naive chain, one thread, ``runs`` runs one after the other."""
    state0 = tsode.initial_state(4, 2, "random", N=1000, seed=1)
    G0 = np.array(state0.covariance)
    v, vs = np.array(state0.v, float), np.array(state0.v_star, float)
    naive_chain(G0.copy(), v, vs, 4, 1000, 0.5, np.random.default_rng(0), 10)
    t0, c0 = time.perf_counter(), time.process_time()
    for r in range(runs):
        naive_chain(G0.copy(), v, vs, 4, 1000, 0.5, np.random.default_rng(r), n_steps)
    return runs * n_steps / (time.perf_counter() - t0), runs * n_steps / (time.process_time() - c0)


def yardstick(f):
    header("Reduced engine against the naive one-thread chain (same process)",
           "naive chain, steps/s (wall)", "engine, run-steps/s (wall)", "ratio (wall)",
           "ratio per CPU-second")
    for _ in range(2):
        nw, nc = naive_rate(int(2e5 * f))
        ew, ec = chain_rate(4, 2, 1000, 100 * f)
        print(f"| {nw:,.0f} | {ew:,.0f} | {ew / nw:.2f} | {ec / nc:.2f} |", flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="no K = 100 ODE, no K = 200 drift")
    p.add_argument("--chain", action="store_true", help="only the naive-yardstick comparison")
    args = p.parse_args()
    f = 0.3 if args.quick else 1.0
    import numba

    print(f"cpus: {os.cpu_count()}, numba threads: {numba.get_num_threads()}, "
          f"load average before: {load()}")
    yardstick(f)
    if args.chain:
        return
    drift_table([5, 10, 20, 50, 100] + ([] if args.quick else [200]))
    ode_table([5, 10, 20, 50] + ([] if args.quick else [100]))
    chain_table(f)
    print(f"\nload average after: {load()} (wall times mean little when it exceeds the cpus)")


if __name__ == "__main__":
    main()
