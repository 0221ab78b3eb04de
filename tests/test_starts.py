"""The ``start`` axis of sweeps (issue 18): independent macroscopic starts, each with its own
initial state and SGD noise, and specs without it keep their seeds, hash and task keys."""

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tsode
from tsode.sweeps import SpecError, load_spec

SPEC = """\
[setup]
activation = "erf"
eta = 0.2
eta_v = 0.2
sigma = 0.1

[network]
M = 2
K = [2, 3]
init = "random"
v = "normal"
START

[run]
engine = "reduced"
N = 200
runs = 2
alpha_max = 5.0
n_alphas = 5
seed = 7
"""
WITHOUT = SPEC.replace("START\n", "")
WITH = SPEC.replace("START", "start = [0, 1, 2]")

#: The seed rule as documented in the README and the netCDF attribute ``seed_rule``, written
#: out independently of tsode.sweeps.spec: SeedSequence(seed, spawn_key = the first 16 bytes
#: of sha256(canonical JSON of the seed settings)) as four little-endian uint32 words; the two
#: seeds are its first two uint64 words shifted right by one bit.
DOCUMENTED_SEED_KEYS = ("activation", "eta", "eta_v", "sigma", "weight_decay", "M", "K", "init",
                        "init_std", "v", "v_star", "v_scale", "orthogonal_teacher", "N")


def documented_seeds(settings: dict, keys) -> tuple[int, int]:
    text = json.dumps({k: settings[k] for k in keys}, sort_keys=True, separators=(",", ":"))
    words = hashlib.sha256(text.encode()).digest()
    key = tuple(int.from_bytes(words[i:i + 4], "little") for i in range(0, 16, 4))
    a, b = np.random.SeedSequence(settings["seed"], spawn_key=key).generate_state(2, np.uint64)
    return int(a) >> 1, int(b) >> 1


def test_without_start_the_seeds_hash_and_keys_are_unchanged():
    spec = load_spec(WITHOUT)
    assert "start" not in spec.values and spec.swept == ("K",)
    for task in spec.tasks():
        assert "start" not in task.settings
        assert task.seeds() == documented_seeds(task.settings, DOCUMENTED_SEED_KEYS)
    # the hash covers exactly the settings of the spec before the start axis existed
    assert spec.hash == hashlib.sha256(json.dumps(
        spec.values, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def test_start_enters_both_seeds():
    tasks = load_spec(WITH).tasks()
    assert [t.settings["start"] for t in tasks] == [0, 1, 2, 0, 1, 2]
    for t in tasks:
        assert t.seeds() == documented_seeds(t.settings, DOCUMENTED_SEED_KEYS + ("start",))
    init, sim = zip(*(t.seeds() for t in tasks))
    assert len(set(init)) == len(set(sim)) == 6
    # and none equals the seeds of the same task without a start
    plain = {t.seeds() for t in load_spec(WITHOUT).tasks()}
    assert not plain & set(zip(init, sim))


@pytest.fixture(scope="module")
def swept():
    return tsode.sweep(WITH, executor=ThreadPoolExecutor(1))


def test_start_is_a_dimension_with_its_own_initial_state(swept):
    ds = swept
    assert ds.eg.dims == ("K", "start", "run", "alpha")
    assert list(ds.start.values) == [0, 1, 2]
    for K in (2, 3):
        Q0 = ds.Q.sel(K=K).isel(alpha=0).values[..., :K, :K]  # (start, run, K, K)
        v0 = ds.v.sel(K=K).isel(alpha=0).values[..., :K]
        # runs of one start share it; starts differ (w ~ N(0, 1) and v ~ N(0, 1) in N = 200)
        assert np.array_equal(Q0[:, 0], Q0[:, 1]) and np.array_equal(v0[:, 0], v0[:, 1])
        for a in range(3):
            for b in range(a):
                assert np.abs(v0[a, 0] - v0[b, 0]).max() > 1e-3
                assert np.abs(Q0[a, 0] - Q0[b, 0]).max() > 1e-3
        # and the SGD noise differs between the runs of a start
        assert not np.array_equal(ds.eg.sel(K=K).values[:, 0, -1], ds.eg.sel(K=K).values[:, 1, -1])


def test_one_start_alone_equals_the_start_inside_the_grid(swept):
    alone = tsode.sweep(SPEC.replace("START", "start = 2").replace("K = [2, 3]", "K = 3"),
                        executor=ThreadPoolExecutor(1))
    assert alone.eg.dims == ("run", "alpha")
    assert np.array_equal(alone.eg.values, swept.eg.sel(K=3, start=2).values)
    assert int(alone.init_seed) == int(swept.init_seed.sel(K=3, start=2))


@pytest.mark.parametrize("value, match", [
    ("-1", "start"), ("1.5", "start"), ("[0, 0]", "start: repeated"), ("[]", "start: empty"),
    ('"a"', "start")])
def test_bad_start_is_refused_by_name(value, match):
    with pytest.raises(SpecError, match=match):
        load_spec(SPEC.replace("START", f"start = {value}"))


def test_book_ensembles_read_the_start_axis(swept):
    """tsode.book.ensembles over a sweep with starts: the stored state needs its start; the
    statistics are over starts x runs with the s.e. from the start means (recomputed here with
    numpy); a cache from one start (no start dimension) falls back to std/sqrt(runs)."""
    from tsode.book import ensembles as E

    with pytest.raises(ValueError, match="give start="):
        E.stored_state(swept, K=2)
    st = E.stored_state(swept, K=3, start=1)
    np.testing.assert_array_equal(st.v, swept.v.sel(K=3, start=1).isel(run=0, alpha=0).values[:3])
    got = E.sgd_at(swept, 5.0, K=3)
    eg = swept.eg.sel(K=3).isel(alpha=-1).values  # (start, run)
    m = eg.mean(1)
    assert (got["starts"], got["runs"]) == (3, 2)
    assert got["mean"] == pytest.approx(eg.mean(), rel=1e-13)
    assert got["stderr"] == pytest.approx(m.std(ddof=1) / np.sqrt(3), rel=1e-12)
    one = E.sgd_at(swept.sel(start=0), 5.0, K=3)
    assert one["starts"] == 1 and np.isnan(one["between_sd"])
    assert one["stderr"] == pytest.approx(eg[0].std(ddof=1) / np.sqrt(2), rel=1e-12)


def test_long_times_reads_starts_and_N(long_run_cache):
    """The chapter-2 long-time reader on a sweep with dims (L, start, N, run, alpha): per
    (L, N) the mean over the starts, the s.e. from the start means (recomputed with numpy) and
    the ODE averaged over the starts' stored states; the paired z."""
    from tsode.book import ensembles as E
    from tsode.book import long_runs

    long_run_cache(
        "tinylong",
        "[setup]\nactivation = 'erf'\neta = 0.2\nsigma = 0.1\n"
        "[network]\nM = 2\nL = [1]\nstart = [0, 1, 2]\n"
        "[run]\nengine = 'reduced'\nN = [100, 200]\nruns = 1\nalpha_max = 20.0\n"
        "n_alphas = 10\nalpha_min = 1.0\n")
    res = E.long_times(E.LongTimesSettings(cache="tinylong", alpha_ode=30.0))
    assert not res.missing and set(res.curves) == {(1, 100), (1, 200)}
    ds = long_runs.load("tinylong")
    for row in res.table:
        eg = ds.eg.sel(L=1, N=row["N"]).sel(alpha=row["alpha"]).values  # (start, run = 1)
        assert (row["starts"], row["runs"]) == (3, 1)
        assert row["mean"] == pytest.approx(eg.mean(), rel=1e-13)
        assert row["stderr"] == pytest.approx(eg.mean(1).std(ddof=1) / np.sqrt(3), rel=1e-12)
        odes = [tsode.integrate(E.stored_state(ds, L=1, N=row["N"], start=s),
                                E.setup_of(ds), row["alpha"], alphas=[0.0, row["alpha"]]).eg[-1]
                for s in (0, 1, 2)]
        # long_times interpolates its ODE log-linearly on a 300-point grid: ~1e-4 relative
        assert row["ode"] == pytest.approx(np.mean(odes), rel=1e-3)
        d = eg[:, 0] - np.array(odes)
        z = d.mean() / (d.std(ddof=1) / np.sqrt(3))
        assert row["z"] == pytest.approx(z, abs=1e-3 * np.mean(odes) / (d.std(ddof=1) / np.sqrt(3)))
