"""tsode.sweep: the issue's example spec on every executor (bitwise identical), a Dask worker
killed mid-sweep, CLI interruption and --resume, bad specs, storage and provenance.

Everything listens on 127.0.0.1 only; subprocesses are killed in fixtures with bounded waits.
"""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import tsode
from tsode.sweeps import SpecError, load_spec
from tsode.sweeps.store import SpecMismatch, read_netcdf

EXAMPLE = """\
[setup]
activation = "erf"
eta = [0.1, 0.2]
eta_v = 0.0
sigma = 0.1

[network]
M = 2
K = [2, 3, 4]
init = "random"

[run]
engine = "reduced"     # or "ode", "full"
N = 1000
runs = 8
alpha_max = 100.0
seed = 0
"""

#: 8 tasks of ~0.3 s each on one core: long enough to interrupt or kill a worker mid-sweep.
SLOW = EXAMPLE.replace("K = [2, 3, 4]", "K = [2, 3, 4, 5]").replace("runs = 8", "runs = 6")

RESULT_VARS = ("eg", "Q", "R", "v", "T_teacher", "v_star", "alpha_recorded", "init_seed",
               "sim_seed", "error")
ENV = dict(os.environ, PYTHONPATH=str(Path(tsode.__file__).parents[1]),
           OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")


def assert_same(a, b):
    """Bitwise equality of every result variable and coordinate (not timings, hosts)."""
    assert a.attrs["spec_hash"] == b.attrs["spec_hash"]
    for name in RESULT_VARS:
        x, y = a[name].values, b[name].values
        assert x.shape == y.shape and x.dtype.kind == y.dtype.kind, name
        if x.dtype.kind == "f":
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            assert (x == y).all(), name
    for c in a.coords:
        assert np.array_equal(a[c].values, b[c].values), c


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "example.toml"
    path.write_text(EXAMPLE)
    return path


@pytest.fixture(scope="module")
def reference(example):
    """The example with the default executor (local process pool, all cores)."""
    return tsode.sweep(example)


def _direct(ds, eta, K):
    """The same task computed by calling tsode.simulate directly with the stored seeds."""
    t = ds.sel(eta=eta, K=K)
    state0 = tsode.initial_state(K, 2, "random", N=1000, seed=int(t.init_seed))
    setup = tsode.Setup("erf", eta=eta, eta_v=0.0, sigma=0.1)
    return tsode.simulate(state0, setup, N=1000, alpha_max=100.0, engine="reduced",
                          seed=int(t.sim_seed), n_runs=8, alphas=ds.alpha.values)


def test_example_layout_and_values(reference):
    ds = reference
    assert dict(ds.sizes) == dict(eta=2, K=3, run=8, alpha=ds.alpha.size, k=4, k2=4, m=2, m2=2)
    assert list(ds.eta.values) == [0.1, 0.2] and list(ds.K.values) == [2, 3, 4]
    traj = _direct(ds, 0.2, 3)
    assert np.array_equal(ds.eg.sel(eta=0.2, K=3).values, traj.eg)
    assert np.array_equal(ds.Q.sel(eta=0.2, K=3).values[:, :, :3, :3], traj.Q)
    assert np.isnan(ds.Q.sel(eta=0.2, K=3).values[:, :, 3]).all()  # padding of K = 3 < 4
    assert (ds.error.values == "").all() and (ds.seconds.values > 0).all()
    assert len(set(ds.sim_seed.values.ravel())) == 6  # distinct streams per task
    for key in ("spec", "tsode_version", "git_commit", "created", "executor"):
        assert key in ds.attrs


def test_task_seeds_depend_on_settings_not_on_the_grid(reference, example):
    """A task's result is the same when it is run alone (seeds come from its settings)."""
    alone = tsode.sweep(EXAMPLE.replace("eta = [0.1, 0.2]", "eta = 0.2")
                        .replace("K = [2, 3, 4]", "K = 3"), executor=ThreadPoolExecutor(1))
    assert np.array_equal(alone.eg.values, reference.eg.sel(eta=0.2, K=3).values[:, :])


def test_local_cluster_bitwise(reference, example):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        ds = tsode.sweep(example, executor=client)
    assert_same(ds, reference)
    assert "dask" in ds.attrs["executor"]


def _wait_for(predicate, timeout, what):
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def dask_processes(tmp_path):
    """`dask scheduler` + two `dask worker` subprocesses on 127.0.0.1; yields the address."""
    sched_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]  # the `dask` command of this interpreter
    procs = [subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sched_file)], env=ENV, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)]
    try:
        _wait_for(sched_file.exists, 60, "the dask scheduler")
        for _ in range(2):
            procs.append(subprocess.Popen(
                [*dask, "worker", "--scheduler-file",
                 str(sched_file), "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard"],
                env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        address = json.loads(sched_file.read_text())["address"]
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
            try:
                yield address
            finally:
                client.shutdown()  # scheduler and workers exit cleanly
    finally:
        _stop(procs)


def _stop(procs, timeout=15):
    """Wait for the processes to exit; SIGTERM, then SIGKILL, the ones that do not."""
    for signal_them in (lambda p: None, subprocess.Popen.terminate, subprocess.Popen.kill):
        for p in procs:
            if p.poll() is None:
                signal_them(p)
        for p in procs:
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass


def test_dask_scheduler_and_workers_bitwise(reference, example, dask_processes):
    assert dask_processes.startswith("tcp://127.0.0.1:")
    ds = tsode.sweep(example, executor=dask_processes)
    assert_same(ds, reference)
    assert dask_processes in ds.attrs["executor"]


@pytest.fixture(scope="module")
def slow_reference(tmp_path_factory):
    path = tmp_path_factory.mktemp("slow") / "slow.toml"
    path.write_text(SLOW)
    return path, tsode.sweep(path, executor=ThreadPoolExecutor(2))


def test_killed_dask_worker_still_completes(slow_reference):
    from distributed import Client, LocalCluster

    path, ref = slow_reference
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        assert len(pids) == 2

        def kill_one(task, result):  # both workers are busy when the first task returns
            if not killed:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])

        ds = tsode.sweep(path, executor=client, on_task=kill_one)
    assert killed and int(ds.seconds.count()) == 8
    assert_same(ds, ref)


def test_cli_interrupt_and_resume(slow_reference, tmp_path):
    path, ref = slow_reference
    out = tmp_path / "out.nc"
    parts = tmp_path / "out.nc.parts"
    cmd = [sys.executable, "-m", "tsode", "sweep", str(path), "-o", str(out), "--workers", "1",
           "--no-progress"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        _wait_for(lambda: len(list(parts.glob("*.npz"))) >= 2, 120, "two finished tasks")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 130, err
    assert "--resume" in err and not out.exists()
    done = sorted(parts.glob("*.npz"))
    assert 2 <= len(done) < 8
    hosts_before = {str(np.load(p, allow_pickle=False)["host"]) for p in done}

    again = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses without --resume
    again = subprocess.run(cmd + ["--resume"], env=ENV, capture_output=True, text=True,
                           timeout=120)
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} of 8 tasks already done, {8 - len(done)} to run" in again.stderr
    ds = read_netcdf(out)
    assert_same(ds, ref)
    hosts = list(ds.host.values.ravel())
    assert sum(h in hosts_before for h in hosts) == len(done)  # old tasks were not recomputed
    assert not parts.exists()


def test_changed_spec_refused_unless_overwrite(tmp_path):
    spec = "[setup]\neta = 0.5\n[network]\nM = 1\nK = [1, 2]\n[run]\nalpha_max = 1.0\n"
    out = tmp_path / "ode.nc"
    pool = ThreadPoolExecutor(1)
    first = tsode.sweep(spec, pool, out)
    assert first.eg.dims == ("K", "run", "alpha")
    other = spec.replace("eta = 0.5", "eta = 0.4")
    with pytest.raises(SpecMismatch, match="another spec"):
        tsode.sweep(other, pool, out)
    with pytest.raises(SpecMismatch):
        tsode.sweep(other, pool, out, resume=True)
    assert read_netcdf(out).attrs["spec_hash"] == first.attrs["spec_hash"]
    second = tsode.sweep(other, pool, out, overwrite=True)
    assert read_netcdf(out).attrs["spec_hash"] == second.attrs["spec_hash"]
    # same spec, resume: nothing recomputed
    again = tsode.sweep(other, ThreadPoolExecutor(1), out, resume=True)
    assert again.attrs["created"] == second.attrs["created"]


def test_output_written_after_a_dask_client_was_default(tmp_path):
    """A closed Dask client can leave dask's default scheduler set to "dask.distributed";
    writing and reading the output must not depend on it."""
    import dask

    spec = "[setup]\neta = 0.5\n[network]\nM = 1\n[run]\nalpha_max = 1.0\n"
    with dask.config.set(scheduler="dask.distributed"):
        ds = tsode.sweep(spec, ThreadPoolExecutor(1), tmp_path / "x.nc")
        assert read_netcdf(tmp_path / "x.nc").eg.shape == ds.eg.shape == (1, 101)


def test_netcdf_readable_without_tsode(tmp_path):
    spec = "[setup]\neta = 0.5\n[network]\nM = 2\nK = 2\n[run]\nalpha_max = 1.0\n"
    out = tmp_path / "ode.nc"
    tsode.sweep(spec, ThreadPoolExecutor(1), out)
    code = ("import sys, h5py; f = h5py.File(sys.argv[1]); "
            "print(f['eg'].shape, f.attrs['spec_hash'])")
    res = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=""))
    assert res.returncode == 0, res.stderr
    assert "(1, 101)" in res.stdout  # (run, alpha): 0 plus 100 log-spaced times


def test_fixed_point_engine():
    """erf, K = M = 1 from the informed start: the fixed point has R = Q = T = 1 at sigma = 0."""
    spec = ("[setup]\neta = 0.5\n[network]\nM = 1\nK = 1\ninit = 'informed'\n"
            "[run]\nengine = 'fixed_point'\nalpha_max = 10.0\n")
    ds = tsode.sweep(spec, ThreadPoolExecutor(1))
    assert ds.fp_converged.item() == 1
    assert abs(ds.eg_star.item()) < 1e-12 and abs(ds.R_star.values[0, 0] - 1) < 1e-9


class _Refuse(Executor):
    def submit(self, fn, *args, **kwargs):
        raise AssertionError("a task was submitted for a bad spec")


BASE = dict(setup=dict(eta=0.1), network=dict(M=2, K=[2, 3]), run=dict(alpha_max=1.0))


def _bad(section, **changes):
    spec = {k: dict(v) for k, v in BASE.items()}
    spec.setdefault(section, {}).update(changes)
    return spec


@pytest.mark.parametrize("spec, match", [
    (_bad("setup", temperature=1.0), "unknown setting 'temperature'"),
    (_bad("extras", x=1), r"unknown section \[extras\]"),
    (_bad("network", K=[]), "K: empty grid"),
    (_bad("setup", eta=[]), "eta: empty grid"),
    (_bad("network", K=[1, 3], init="informed"), "K = 1 < M = 2.*informed"),
    (_bad("setup", eta=-0.1), "eta must be finite and > 0"),
    (_bad("setup", sigma=[0.1, -1.0]), "sigma must be finite and >= 0"),
    (_bad("setup", activation="tanh"), "activation must be one of"),
    (_bad("run", N=0), "N must be an integer >= 1"),
    (_bad("run", runs=4), "runs = 4.*deterministic"),
    (_bad("run", engine="reduced", runs=2.5), "runs must be an integer"),
    (_bad("network", L=1), "either K or L"),
    (_bad("run", engine="turbo"), "engine must be one of"),
    (_bad("run", alpha_max=None), "alpha_max"),
    (_bad("network", v=["ones", "normal"]), "v cannot be swept"),
])
def test_bad_specs_fail_before_any_task(spec, match):
    if spec["run"].get("alpha_max", 1) is None:
        del spec["run"]["alpha_max"]
    with pytest.raises(SpecError, match=match):
        tsode.sweep(spec, executor=_Refuse())


def test_bad_toml_path_and_colliding_times(tmp_path):
    with pytest.raises(SpecError, match="missing setting 'eta'"):
        load_spec("[network]\nM = 1\n[run]\nalpha_max = 1.0\n")
    with pytest.raises(SpecError, match="alphas must be a non-empty increasing list"):
        load_spec(_bad("run", alphas=[0.0, 0.5, 0.3]))
    path = tmp_path / "missing.toml"
    with pytest.raises(FileNotFoundError):
        load_spec(str(path))
    path.write_text("[setup]\neta = \n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)


def test_cli_dry_run_lists_tasks_and_cost(example):
    res = subprocess.run([sys.executable, "-m", "tsode", "sweep", "--dry-run", str(example)],
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "6 tasks" in lines[0] and "estimated cost" in lines[-1]
    assert sum("8e+05" in line for line in lines) == 6  # runs * alpha_max * N run-steps


def test_import_tsode_stays_light():
    code = ("import sys, tsode; heavy = [m for m in ('xarray', 'dask', 'distributed', "
            "'pandas', 'h5netcdf') if m in sys.modules]; print(heavy)")
    res = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True,
                         text=True, timeout=60)
    assert res.stdout.strip() == "[]", res.stderr

