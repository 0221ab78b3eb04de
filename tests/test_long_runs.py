"""The book's cached long runs (book/specs -> book/data): provenance of every cached file, a
prefix of one run per file recomputed bitwise, and the loader's stale-cache behaviour."""

import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tsode
from tsode.book import long_runs
from tsode.sweeps import load_spec

CACHED = sorted(p.stem for p in long_runs.DATA.glob("*.nc"))
#: long runs allowed to come from one start (issue 18: none; every spec read at alpha >= 1e4
#: sweeps ``start`` over >= 8 starts).
ONE_START: set = set()


def test_every_spec_parses_and_every_cache_has_a_spec():
    assert long_runs.names(), "no long-run specs in book/specs"
    for name in long_runs.names():
        spec = load_spec(long_runs.SPECS / f"{name}.toml")
        # issue 18: >= 8 independent starts for every ensemble read at alpha >= 1e4, and at
        # least 8 runs per task in all
        starts = spec.values.get("start", [0])
        assert spec.engine == "reduced" and len(starts) * spec.values["runs"] >= 8
        if spec.values["alpha_max"] >= 1e4 and name not in ONE_START:
            assert "start" in spec.swept and len(starts) >= 8, name
        assert min(spec.values["N"] if isinstance(spec.values["N"], list)
                   else [spec.values["N"]]) >= 500
    assert set(CACHED) <= set(long_runs.names())
    assert CACHED, "no cached long run in book/data (python -m tsode.book long NAME)"


def test_cached_files_provenance_and_prefix_bitwise():
    for name in CACHED:
        assert long_runs.check(name) == [], name
        ds = long_runs.load(name)
        assert int(ds.seconds.count()) == ds.seconds.size  # every task finished
        assert (ds.error.values == "").all(), name
        out = long_runs.recompute_prefix(name)
        assert out["alpha"].size >= 10
        assert_prefix_equal(out, name)


def assert_prefix_equal(out, name):
    """The simulated state (Q, R, v) bitwise on the CPU that computed the cache.

    ε_g is not simulated: it is evaluated from (Q, R, v) by closed forms (½ Σ w_a w_b I2)
    whose floating-point order may change with any refactoring of the integrals (a sum of
    O(1) terms cancelling to ε_g ~ 1e-4 loses ~4 of 16 digits): it must agree to 1e-10
    relative (measured: <= 3e-14 between two versions of the code).
    On another CPU the compiled kernels may fuse or reorder floating-point operations
    (fastmath contract/reassoc in _sim_kernels), so the last bits of the state may differ:
    there the prefix (<= 2e4 steps, before any plateau escape) must agree to 1e-9 relative,
    far above rounding (~1e-13 after 2e4 steps) and far below what any change of seed,
    settings or dynamics produces (O(1e-2) and more, see the power test)."""
    for var, cached in out["cached"].items():
        new = out["recomputed"][var]
        if out["same_cpu"] and var != "eg":
            assert np.array_equal(new, cached), (name, var)
        else:
            rtol = 1e-10 if out["same_cpu"] else 1e-9
            np.testing.assert_allclose(new, cached, rtol=rtol, atol=1e-15, err_msg=name)


@pytest.fixture
def tiny(long_run_cache):
    """A spec dir with one small long run, computed into a temporary data dir."""
    return long_run_cache(
        "tiny",
        "[setup]\nactivation = 'erf'\neta = 0.2\nsigma = 0.1\n"
        "[network]\nM = 2\nL = [0, 1]\n"
        "[run]\nengine = 'reduced'\nN = 200\nruns = 2\nalpha_max = 20.0\nn_alphas = 30\n")


def test_loader_accepts_matching_settings(tiny):
    ds = long_runs.load("tiny", activation="erf", L=[0, 1], N=200)
    assert list(ds.L.values) == [0, 1] and ds.eg.shape[:2] == (2, 2)


@pytest.mark.parametrize("expected, match", [
    (dict(N=1000), r"N = 1000 asked, the spec has 200"),
    (dict(L=[0, 4]), r"L = \[0, 4\] asked"),
    (dict(activation="relu"), "activation = 'relu' asked"),
])
def test_loader_refuses_other_settings(tiny, expected, match):
    with pytest.raises(long_runs.StaleCache, match=match) as err:
        long_runs.load("tiny", **expected)
    assert "python -m tsode.book long tiny" in str(err.value)


def test_loader_refuses_edited_spec_and_missing_cache(tiny):
    tiny.write_text(tiny.read_text().replace("runs = 2", "runs = 3"))
    with pytest.raises(long_runs.StaleCache, match="computed from another spec"):
        long_runs.load("tiny")
    shutil.rmtree(long_runs.DATA)
    with pytest.raises(long_runs.StaleCache, match="does not exist"):
        long_runs.load("tiny")


def test_prefix_recomputation_matches_and_detects_a_change(tiny):
    out = long_runs.recompute_prefix("tiny", max_steps=1000)
    assert out["alpha"][-1] <= 5.0 and out["alpha"].size >= 5
    assert out["same_cpu"]
    for var in ("eg", "Q", "R", "v"):
        assert np.array_equal(out["recomputed"][var], out["cached"][var]), var
    # power: the cache of another seed is told apart
    ds = long_runs.load("tiny")
    other = tsode.sweep(tiny.read_text().replace("n_alphas = 30", "n_alphas = 30\nseed = 1"),
                        executor=ThreadPoolExecutor(1))
    T = out["alpha"].size
    assert not np.array_equal(other.eg.values[0, 0, :T], out["recomputed"]["eg"])
    replaced = dict(eg=other.eg.values[0, 0, :T], Q=other.Q.values[0, 0, :T, :2, :2])
    for var, value in replaced.items():
        for same_cpu in (True, False):  # rejected bitwise and by the tolerances
            changed = dict(out, same_cpu=same_cpu,
                           recomputed=dict(out["recomputed"], **{var: value}))
            with pytest.raises(AssertionError):
                assert_prefix_equal(changed, "tiny")
    assert np.array_equal(ds.eg.values[0, 0, :T], out["recomputed"]["eg"])


@pytest.mark.parametrize("error", [
    "held", "memory", "interrupt",
])
def test_long_cli_reports_store_errors_in_one_line(monkeypatch, capsys, error):
    """`python -m tsode.book long` ends a held lock, a memory ceiling or Ctrl-C with one line on
    stderr and exit 2 (130 for Ctrl-C), like `tsode sweep`, never a traceback."""
    from tsode.sweeps.store import OutputLocked

    raised = {"held": OutputLocked("book/data/x.nc is being written by host 1234"),
              "memory": MemoryError("the sweep needs 40 GB, above the ceiling of 19 GB"),
              "interrupt": KeyboardInterrupt()}[error]

    def compute(*args, **kwargs):
        raise raised

    monkeypatch.setattr(long_runs, "compute", compute)
    name = long_runs.names()[0]
    code = long_runs.main([name])
    err = capsys.readouterr().err.strip()
    assert code == (130 if error == "interrupt" else 2)
    assert err.startswith(name) and "Traceback" not in err
    assert len(err.splitlines()) == 1
