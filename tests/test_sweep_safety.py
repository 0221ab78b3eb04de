"""Sweeps that cannot lose or corrupt results (issue 22): one writer per output, verified parts,
a dry run that computes nothing, the spec checked whole, one-line I/O errors, a fast Ctrl-C.

The CLI cases run the real command line (``python -m tsode``, the console script's entry
point, with PYTHONPATH at this checkout) in subprocesses with bounded waits.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tsode
from test_sweep import ENV, SLOW, _wait_for, assert_same
from tsode.sweeps import SpecError, load_spec
from tsode.sweeps.spec import estimate, task_cost
from tsode.sweeps.store import (OutputLock, OutputLocked, PartStore, SpecMismatch, StoreError,
                                read_netcdf, with_meta)

TSODE = [sys.executable, "-m", "tsode"]

#: Four ODE tasks of ~0.1 s: parts to damage.
ODE4 = ("[setup]\neta = [0.3, 0.5]\n[network]\nM = 1\nK = [1, 2]\n"
        "[run]\nalpha_max = 2.0\nn_alphas = 20\n")


def cli(*args, timeout=120, cwd=None):
    return subprocess.run([*TSODE, *map(str, args)], env=ENV, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def assert_one_line_error(res, *fragments):
    """Exit code 2 and one line on stderr, naming every fragment; no traceback."""
    err = res.stderr.strip()
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr and len(err.splitlines()) == 1, res.stderr
    assert err.startswith("tsode sweep: "), err
    for f in fragments:
        assert f in err, (f, err)


#: 8 reduced-engine tasks of ~1 s each on one core: a sweep still running seconds after its
#: first task, on any machine.
SLOWER = SLOW.replace("runs = 6", "runs = 24")


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """The SLOWER spec and its solo result."""
    assert SLOWER != SLOW
    path = tmp_path_factory.mktemp("slow") / "slow.toml"
    path.write_text(SLOWER)
    return path, tsode.sweep(path, executor=ThreadPoolExecutor(2))


@pytest.fixture(scope="module")
def ode_clean():
    return tsode.sweep(ODE4, executor=ThreadPoolExecutor(1))


def _children_cpu() -> float:
    """CPU seconds (user + system) of the waited-for child processes so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


# ---------------------------------------------------------------------------------------------
# one writer per output
# ---------------------------------------------------------------------------------------------

def test_second_sweep_on_the_same_output_fails_at_once(slow, tmp_path):
    """The issue's races: with --overwrite the second deleted the first's parts; with --resume
    one crashed on a missing .npz.tmp; with another spec the first reported success over the
    second's file. Now each second sweep exits 2 at once naming the holder, and the first's
    result equals a solo run's.

    "At once" is measured as the second process's CPU time (<= 5 s; about 1.5 s: the start of
    Python and ``import tsode``), not its wall time: on a machine whose cores are shared by
    other jobs the wall time measures their load (the lock itself never waits: LOCK_NB)."""
    path, ref = slow
    other = tmp_path / "other.toml"
    other.write_text(SLOWER.replace("seed = 0", "seed = 1"))
    out = tmp_path / "out.nc"
    first = subprocess.Popen([*TSODE, "sweep", str(path), "-o", str(out), "--workers", "1",
                              "--no-progress"], env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: (tmp_path / "out.nc.parts" / "spec.json").exists(), 120,
                  "the first sweep to start")
        for spec, flags in [(path, ["--overwrite"]), (path, ["--resume"]), (path, []),
                            (other, ["--overwrite"])]:
            t0, cpu0 = time.monotonic(), _children_cpu()
            res = cli("sweep", spec, "-o", out, "--workers", "1", *flags, timeout=60)
            elapsed, cpu = time.monotonic() - t0, _children_cpu() - cpu0
            assert first.poll() is None, "the first sweep ended before the second was tried"
            assert_one_line_error(res, "being written by another sweep", f"pid {first.pid}",
                                  "out.nc.lock")
            assert cpu <= 5.0, (flags, cpu, elapsed)
        _, err = first.communicate(timeout=300)
    finally:
        _kill(first)
    assert first.returncode == 0, err
    assert_same(read_netcdf(out), ref)
    assert not (tmp_path / "out.nc.lock").exists() and not (tmp_path / "out.nc.parts").exists()


def test_lock_names_the_holder_and_is_released(tmp_path):
    out = tmp_path / "x.nc"
    with OutputLock(out) as lock:
        assert lock.path.read_text().split() == [os.uname().nodename, str(os.getpid())]
        with pytest.raises(OutputLocked, match=f"pid {os.getpid()}"):
            OutputLock(out).acquire()
    assert not lock.path.exists()
    OutputLock(out).acquire().release()  # free again


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    """A lock file left by a killed sweep (its flock died with it) does not block the next."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=30)
    lock = tmp_path / "x.nc.lock"
    lock.write_text(f"{os.uname().nodename} {dead.pid}\n")
    spec = "[setup]\neta = 0.5\n[network]\nM = 1\n[run]\nalpha_max = 1.0\nn_alphas = 5\n"
    ds = tsode.sweep(spec, ThreadPoolExecutor(1), tmp_path / "x.nc")
    err = capsys.readouterr().err
    assert f"stale lock {lock}" in err and f"pid {dead.pid} (that process is gone)" in err
    assert ds.eg.shape == (1, 6) and not lock.exists()


def test_lock_is_released_when_the_sweep_fails(tmp_path):
    spec = "[setup]\neta = 0.5\n[network]\nM = 1\n[run]\nalpha_max = 1.0\nn_alphas = 5\n"
    out = tmp_path / "x.nc"
    tsode.sweep(spec, ThreadPoolExecutor(1), out)
    with pytest.raises(SpecMismatch):
        tsode.sweep(spec.replace("0.5", "0.4"), ThreadPoolExecutor(1), out)
    assert not (tmp_path / "x.nc.lock").exists()


# ---------------------------------------------------------------------------------------------
# verified parts
# ---------------------------------------------------------------------------------------------

class _Stop(Exception):
    pass


def _parts_only(spec, out):
    """Run ``spec`` into ``out`` and stop after the last task is stored (parts, no OUT)."""
    n = len(load_spec(spec).tasks())
    seen = []

    def stop_at_last(task, result):
        seen.append(task)
        if len(seen) == n:
            raise _Stop

    with pytest.raises(_Stop):
        tsode.sweep(spec, ThreadPoolExecutor(1), out, on_task=stop_at_last)
    spec = load_spec(spec)
    return spec, PartStore(out, spec)


def _arrays(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def test_damaged_parts_are_recomputed_on_resume(tmp_path, ode_clean, capsys):
    """Foreign npz, NaN-filled arrays (checksum unchanged or recomputed), truncated file,
    pickled object array: each is named with its reason and recomputed; the other parts are
    kept; the result equals a clean run's."""
    out = tmp_path / "o.nc"
    spec, store = _parts_only(ODE4, out)
    t = spec.tasks()
    np.savez(store.path(t[0]), eg=np.zeros((1, 21)), x=np.arange(3))  # foreign
    a = _arrays(store.path(t[1]))
    nan = {k: (np.full_like(v, np.nan) if k in ("eg", "Q", "R", "v") else v)
           for k, v in a.items()}
    np.savez(store.path(t[1]), **nan)  # NaN, old checksum
    data = store.path(t[2]).read_bytes()
    store.path(t[2]).write_bytes(data[: len(data) // 2])  # truncated
    np.savez(store.path(t[3]), **dict(a, Q=np.array([{"x": 1}], dtype=object)))  # pickled
    capsys.readouterr()
    ds = tsode.sweep(ODE4, ThreadPoolExecutor(1), out, resume=True)
    err = capsys.readouterr().err
    for task, why in zip(t, ["not a tsode part file", "checksum mismatch", "unreadable",
                             "unreadable"]):
        line = next(x for x in err.splitlines() if str(store.path(task)) in x)
        assert why in line and "recomputing it" in line, line
    assert_same(ds, ode_clean)

    # NaN arrays with a recomputed checksum: still refused (a task without error has no NaN)
    spec, store = _parts_only(ODE4, tmp_path / "p.nc")
    t0 = spec.tasks()[0]
    a = {k: v for k, v in _arrays(store.path(t0)).items() if k != "_meta"}
    seconds = [float(_arrays(store.path(task))["seconds"]) for task in spec.tasks()]
    a["eg"] = np.full_like(a["eg"], np.nan)
    np.savez(store.path(t0), **with_meta(a, t0, spec.hash))
    assert "non-finite values in ['eg']" in store.check(t0)
    ds = tsode.sweep(ODE4, ThreadPoolExecutor(1), tmp_path / "p.nc", resume=True)
    assert_same(ds, ode_clean)
    kept = [i for i, x in enumerate(seconds) if ds.seconds.values.ravel()[i] == x]
    assert kept == [1, 2, 3]  # only the damaged part was recomputed (timings differ)


def test_part_checks_name_the_reason(tmp_path):
    out = tmp_path / "o.nc"
    spec, store = _parts_only(ODE4, out)
    t = spec.tasks()
    a = {k: v for k, v in _arrays(store.path(t[0])).items() if k != "_meta"}
    assert store.check(t[0]) is None
    cases = {
        "spec hash 'other' is not this spec's": with_meta(a, t[0], "other"),
        "task key": with_meta(a, t[1], spec.hash),  # t[1]'s part stored under t[0]
        "wrong shapes: eg (1, 20)": with_meta(dict(a, eg=a["eg"][:, :-1]), t[0], spec.hash),
        "arrays missing ['Q']": with_meta({k: v for k, v in a.items() if k != "Q"}, t[0],
                                          spec.hash),
        "checksum mismatch": dict(with_meta(a, t[0], spec.hash), eg=2 * a["eg"]),  # scaled
    }
    for why, arrays in cases.items():
        np.savez(store.path(t[0]), **arrays)
        assert why in store.check(t[0]), (why, store.check(t[0]))
    meta = json.loads(str(with_meta(a, t[0], spec.hash)["_meta"]))
    meta["sim_seed"] += 1
    np.savez(store.path(t[0]), **dict(a, _meta=np.array(json.dumps(meta))))
    assert store.check(t[0]) == "recorded seeds differ from the task's"


def test_corrupt_spec_json_is_a_clear_error_and_overwrite_restarts(tmp_path):
    out = tmp_path / "o.nc"
    _, store = _parts_only(ODE4, out)
    (store.dir / "spec.json").write_text("{not json")
    with pytest.raises(StoreError, match="spec.json is unreadable"):
        tsode.sweep(ODE4, ThreadPoolExecutor(1), out, resume=True)
    assert len(list(store.dir.glob("*.npz"))) == 4  # nothing deleted
    ds = tsode.sweep(ODE4, ThreadPoolExecutor(1), out, overwrite=True)
    assert read_netcdf(out).attrs["spec_hash"] == ds.attrs["spec_hash"]


# ---------------------------------------------------------------------------------------------
# the spec checked whole; a dry run that computes nothing
# ---------------------------------------------------------------------------------------------

def test_alphas_beyond_alpha_max_are_refused():
    base = "[setup]\neta = 0.5\n[network]\nM = 1\n[run]\nalpha_max = {amax}\nalphas = {al}\n"
    with pytest.raises(SpecError, match="alphas: output time 50 > alpha_max = 10"):
        load_spec(base.format(amax=10.0, al=[1.0, 50.0]))
    with pytest.raises(SpecError, match="alphas: output time 50 > alpha_max = 20"):
        load_spec(base.format(amax=[10.0, 20.0], al=[1.0, 50.0]))
    spec = load_spec(base.format(amax=[10.0, 50.0], al=[1.0, 50.0]))  # within the largest
    assert [t.alphas for t in spec.tasks()] == [(1.0, 10.0), (1.0, 10.0, 50.0)]


def test_dry_run_of_k100_grid_is_instant_and_computes_nothing(tmp_path):
    """K = 100, a 10 x 10 grid: <= 5 s for the whole command, no trajectory."""
    etas = ", ".join(str(0.1 * i) for i in range(1, 11))
    Ns = ", ".join(str(1000 * i) for i in range(1, 11))
    path = tmp_path / "k100.toml"
    path.write_text(f"[setup]\neta = [{etas}]\n[network]\nM = 2\nK = 100\n[run]\n"
                    f"engine = 'reduced'\nN = [{Ns}]\nruns = 4\nalpha_max = 100.0\n")
    t0, cpu0 = time.monotonic(), _children_cpu()
    res = cli("sweep", "--dry-run", path, timeout=60)
    elapsed, cpu = time.monotonic() - t0, _children_cpu() - cpu0
    # CPU time, as for the lock: about 1.5 s (Python and import tsode), wall time on an idle
    # machine about 2 s
    assert cpu <= 5.0 and res.returncode == 0, (cpu, elapsed, res.stderr)
    last = res.stdout.splitlines()[-1]
    # runs x alpha_max x N summed over the grid: 4 * 100 * 1000 * (1 + ... + 10) * 10 etas
    assert last.startswith(f"estimated cost: {4 * 100 * 1000 * 55 * 10:.3g} SGD run-steps")
    assert "memory: largest task" in last and "100 tasks" in res.stdout.splitlines()[0]


def test_estimate_of_a_huge_grid_builds_no_task(monkeypatch):
    """1000 x 200 tasks (K = 1..200): the estimate reads distinct settings only."""
    from tsode.sweeps import spec as spec_module

    spec = load_spec(dict(setup=dict(eta=[0.001 * i for i in range(1, 1001)]),
                          network=dict(M=2, K=list(range(1, 201))),
                          run=dict(engine="reduced", N=500, runs=3, alpha_max=10.0)))
    monkeypatch.setattr(spec_module.Spec, "iter_tasks", lambda self: 1 / 0)
    t0 = time.perf_counter()
    cost = estimate(spec)
    assert time.perf_counter() - t0 < 2.0
    assert cost.n_tasks == 200_000 and cost.run_steps == 200_000 * 3 * 10 * 500
    # the largest task is K = 200: its recorded overlaps dominate its memory
    G = spec.grid().size
    assert cost.task_bytes >= 8 * 3 * G * (200 * 200 + 200 * 2 + 200)


def test_task_cost_of_full_engine_counts_the_weights():
    """engine = 'full', N = 1e6, K = M = 2: the (K + M) x N weights of the simulation and of
    the sampled initial state dominate: >= 2 x 4 x 1e6 x 8 bytes."""
    spec = load_spec("[setup]\neta = 0.5\n[network]\nM = 2\n[run]\nengine = 'full'\n"
                     "N = 1000000\nalpha_max = 0.001\n")
    steps, n_bytes = task_cost(spec, spec.tasks()[0].settings)
    assert steps == 1000 and n_bytes >= 2 * 4 * 1e6 * 8


def test_memory_ceiling_refuses_before_any_work(tmp_path):
    class Refuse(ThreadPoolExecutor):
        def submit(self, *a, **k):
            raise AssertionError("a task was submitted")

    spec = "[setup]\neta = 0.5\n[network]\nM = 1\n[run]\nalpha_max = 1.0\n"
    with pytest.raises(MemoryError, match="ceiling is 1 kB \\(max_memory\\)"):
        tsode.sweep(spec, Refuse(1), tmp_path / "x.nc", max_memory=1000)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------------------------
# one-line errors for everything a user can type
# ---------------------------------------------------------------------------------------------

GOOD = "[setup]\neta = 0.5\n[network]\nM = 1\n[run]\nalpha_max = 1.0\nn_alphas = 5\n"


def test_cli_errors_are_one_line(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    bad_bytes = tmp_path / "latin1.toml"
    bad_bytes.write_bytes("[setup]\neta = 0.5 # \xe9\n".encode("latin-1"))
    a_file = tmp_path / "file"
    a_file.write_text("x")
    huge = tmp_path / "huge.toml"
    huge.write_text(GOOD.replace("alpha_max = 1.0", "engine = 'full'\nN = 1000000000000\n"
                                 "alpha_max = 1.0"))
    steps = tmp_path / "steps.toml"
    steps.write_text(GOOD.replace("alpha_max = 1.0", "engine = 'reduced'\nN = " + "1" + "0" * 20
                                  + "\nalpha_max = 1.0"))
    (tmp_path / "locked.nc.lock").mkdir()
    (tmp_path / "p.nc.parts").write_text("x")
    cases = [
        (["sweep", bad_bytes, "-o", tmp_path / "a.nc"], ["not valid TOML"]),
        (["sweep", steps, "-o", tmp_path / "a.nc"], ["1e+20 SGD steps", "at most 2^62"]),
        (["sweep", good, "-o", tmp_path / "locked.nc"], ["locked.nc.lock: Is a directory"]),
        (["sweep", good, "-o", tmp_path / "p.nc"], ["p.nc.parts is not a directory"]),
        (["sweep", tmp_path, "-o", tmp_path / "a.nc"], ["Is a directory"]),
        (["sweep", tmp_path / "missing.toml", "-o", tmp_path / "a.nc"], ["No such file"]),
        (["sweep", good, "-o", tmp_path], ["is a directory"]),
        (["sweep", good, "-o", a_file / "out.nc"], ["lock file", "Not a directory"]),
        (["sweep", good, "-o", tmp_path / "no" / "out.nc"], ["lock file", "No such file"]),
        (["sweep", good, "-o", tmp_path / "b.nc", "--scheduler", "not an address"],
         ["malformed scheduler address"]),
        (["sweep", huge, "-o", tmp_path / "c.nc"], ["ceiling"]),
        (["sweep", good], ["-o/--output is required"]),
    ]
    for args, fragments in cases:
        assert_one_line_error(cli(*args), *fragments)
    assert not (tmp_path / "b.nc.parts").exists()  # the address is checked first
    res = cli("sweep", "--dry-run", huge)  # N = 1e12: estimated, not computed
    assert res.returncode == 0 and "refused as it stands" in res.stdout, res.stderr


@pytest.mark.parametrize("content", [b"hello\n", None])
def test_foreign_or_truncated_output_is_reported_and_overwritten(tmp_path, content):
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    out = tmp_path / "o.nc"
    if content is None:  # a truncated netCDF file
        tsode.sweep(GOOD, ThreadPoolExecutor(1), out)
        content = out.read_bytes()[:1000]
    out.write_bytes(content)
    for flags in ([], ["--resume"]):
        assert_one_line_error(cli("sweep", good, "-o", out, *flags),
                              "not a readable netCDF file", "--overwrite")
        assert out.read_bytes() == content  # untouched
    res = cli("sweep", good, "-o", out, "--overwrite")
    assert res.returncode == 0, res.stderr
    assert read_netcdf(out).eg.shape == (1, 6)


def test_unreachable_scheduler_is_an_executor_error(monkeypatch):
    from socket import socket

    from tsode.sweeps import run

    with socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(run, "CONNECT_TIMEOUT", "2s")
    t0 = time.monotonic()
    with pytest.raises(run.ExecutorError, match=f"cannot reach the Dask scheduler at "
                                                f"tcp://127.0.0.1:{port} within 2s"):
        tsode.sweep(GOOD, f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - t0 < 30


# ---------------------------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------------------------

def test_ctrl_c_exits_within_2s_keeping_every_finished_task(slow, tmp_path):
    path, ref = slow
    out = tmp_path / "out.nc"
    parts = tmp_path / "out.nc.parts"
    proc = subprocess.Popen([*TSODE, "sweep", str(path), "-o", str(out), "--workers", "2",
                             "--no-progress"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(list(parts.glob("*.npz"))) >= 1, 120, "a finished task")
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        _kill(proc)
    assert proc.returncode == 130 and elapsed <= 2.0, (elapsed, err)
    assert "Traceback" not in err and "--resume" in err
    spec = load_spec(path)
    store = PartStore(out, spec)
    done = [t for t in spec.tasks() if store.path(t).exists()]
    assert done and all(store.check(t) is None for t in done)
    assert not (tmp_path / "out.nc.lock").exists()
    res = cli("sweep", path, "-o", out, "--workers", "1", "--resume", "--no-progress",
              timeout=300)
    assert res.returncode == 0, res.stderr
    assert_same(read_netcdf(out), ref)


# ---------------------------------------------------------------------------------------------
# simulate and integrate: progress off a terminal
# ---------------------------------------------------------------------------------------------

def test_progress_log_writes_a_line_every_few_seconds():
    import io

    from tsode._common import ProgressLog

    now = [0.0]
    out = io.StringIO()
    log = ProgressLog("job", 1000, unit="steps", every=10, stream=out, clock=lambda: now[0])
    for t, n in [(4, 100), (9, 100), (12, 50), (15, 100), (30, 0)]:
        now[0] = t
        log.update(n)
    # lines at t = 12 (250 of 1000 done: 36 s left at 12 s per quarter) and t = 30 (350)
    assert out.getvalue().splitlines() == [
        "job: 25.0% (250 of 1e+03 steps), 12 s elapsed, about 36 s left",
        "job: 35.0% (350 of 1e+03 steps), 30 s elapsed, about 56 s left",
    ]


def test_log_progress_only_off_a_terminal_and_outside_notebooks(monkeypatch):
    from tsode._common import log_progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert log_progress(None) and not log_progress(False) and not log_progress(True)
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert not log_progress(None)


@pytest.mark.parametrize("call, first", [
    ("tsode.simulate(s, setup, N=10**9, alpha_max=100.0, engine='reduced')",
     r"simulate \(reduced, N=1000000000\): \d+\.\d% \(\S+ of 1e\+11 run-steps\), "
     r"\d+ s elapsed, about \d+ s left"),
    ("tsode.integrate(s, setup, 1e7, rtol=1e-12, atol=1e-14)",
     r"integrate \(K=3, M=2\): \d+\.\d% \(\S+ of 1e\+07 of alpha\), \d+ s elapsed, "
     r"about \d+ s left"),
])
def test_long_runs_report_progress_off_a_terminal(call, first):
    """A run of 1e11 steps or a long integration writes progress lines on a non-terminal
    stderr; the process is stopped after the first line."""
    import re

    # a line every 0.05 s: with the fused drift (issue 21) the whole integration takes ~0.3 s
    code = ("import tsode, tsode._common as c; c.PROGRESS_EVERY = 0.05\n"
            "s = tsode.initial_state(3, 2, 'random', N=100, seed=0)\n"
            "setup = tsode.Setup('erf', eta=0.5)\n" + call)
    proc = subprocess.Popen([sys.executable, "-c", code], env=ENV, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    try:
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stderr, selectors.EVENT_READ)
        assert sel.select(timeout=120), "no progress line within 120 s"
        line = proc.stderr.readline().strip()
    finally:
        _kill(proc)
    assert re.fullmatch(first, line), line


def test_simulation_of_1e17_steps_is_refused_up_front():
    """The issue's simulate(N=10**15, engine="reduced") (alpha_max = 100: 1e17 steps) started
    and never returned; its plan of kernel calls alone (~120 bytes per 1.6e5 steps at K + M = 4)
    needs ~75 TB: refused at once, naming the step count."""
    s = tsode.initial_state(2, 2, "informed")
    t0 = time.perf_counter()
    with pytest.raises(MemoryError, match=r"engine='reduced', N=1000000000000000.* of 1e\+17 "
                                          r"steps per run needs about .*fewer steps"):
        tsode.simulate(s, tsode.Setup("erf", eta=0.5), N=10**15, alpha_max=100.0,
                       engine="reduced")
    assert time.perf_counter() - t0 < 5


def test_step_counts_beyond_int64_are_refused():
    s = tsode.initial_state(2, 2, "informed")
    with pytest.raises(ValueError, match=r"alpha_max \* N = 1e\+20 steps: at most 2\^62"):
        tsode.simulate(s, tsode.Setup("erf", eta=0.5), N=10**20, alpha_max=1.0,
                       engine="reduced")


def test_a_nan_result_without_error_is_stored_with_one(tmp_path, monkeypatch):
    """Should an engine ever return NaN without raising, the task is stored with an error
    naming the variables (never a NaN task with error = '')."""
    from tsode.sweeps import tasks

    real = tasks.run_task

    def nan_eg(payload):
        out = real(payload)
        if payload["settings"]["eta"] == 0.3 and payload["settings"]["K"] == 2:
            out["eg"] = np.full_like(out["eg"], np.nan)
        return out

    monkeypatch.setattr("tsode.sweeps.run.run_task", nan_eg)
    for out in (None, tmp_path / "o.nc"):
        ds = tsode.sweep(ODE4, ThreadPoolExecutor(1), out)
        errors = ds.error.values
        assert errors[0, 1] == "non-finite values in ['eg'] without an error", errors
        assert (errors.ravel()[[0, 2, 3]] == "").all()
