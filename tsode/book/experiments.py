r"""The experiments behind the book's figures, one function per section of a chapter.

Every function takes ``mode`` (``"fast"`` or ``"full"``), a ``seed`` and ``overrides`` (a dict
replacing settings by name) and returns a :class:`Result` holding the data of the section's
figure(s) plus its key numbers. The mode is turned into settings here, in :data:`SETTINGS`, so
that the chapter notebooks stay thin (one call, one figure, one checked number) and the
regression tests (``tests/test_chapters.py``) can call the very same code in fast mode.

* ``full`` — the settings of the committed notebooks (the whole book runs in a few minutes on a
  2-core machine; CI re-executes it under nbval).
* ``fast`` — fewer runs, shorter times and smaller N for the simulations; the ODE parts are cheap
  and mostly identical to the full mode.

Conventions are those of the package (DESIGN.md §2): ``erf`` means erf(x/√2), σ is the standard
deviation of the label noise, ε_g is measured against the noiseless teacher, α = steps/N. Teachers
are orthonormal (T = I exactly) and students start either "large" (entries N(0, 1), used for
sigmoidal networks) or "small" (entries N(0, 10⁻⁶), used for ReLU and linear networks), sampled in
N dimensions so that the ODE and the simulations start from the same macroscopic point.
"""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import numpy as np

from ..asymptotics import erf_eg_star_leading, linear_eg_star
from ..ode import integrate
from ..order_parameters import OrderParameters, Setup, generalisation_error, initial_state
from .accuracy import (  # the chapters call experiments.claimed and Result.fmt
    ATOL,
    PERTURBATION,
    RTOL,
    TIGHT,
    TOL_FACTOR,
    claimed,
    fixed_point_accuracy,
    ode_variants,
    perturbed,
    ratio_accuracy,
    robust_format,
    robust_magnitude,
    spectrum_summary,
    spread,
)

__all__ = [
    "MODES",
    "SETTINGS",
    "Result",
    "settings",
    "known_settings",
    "check_overrides",
    "start",
    "ode_vs_sgd",
    "convergence",
    "first_layer_curves",
    "first_layer_final",
    "collapse",
    "slow_mode",
    "both_layers",
    "fixed_points",
    "align_units",
    "robust_format",
    "spectrum_summary",
    "robust_magnitude",
    "claimed",
    "perturbed",
    "ode_variants",
    "spread",
]

MODES = ("fast", "full")


class Result(SimpleNamespace):
    """Data of one figure (attribute access); ``seconds`` is the wall time of the experiment.

    ``accuracy`` maps the name of a printed number to its numerical accuracy (same nesting as
    the number: a float, or an array/dict indexed like it); :meth:`fmt` prints the number with
    the digits that accuracy supports (:func:`robust_format`).
    """

    def __repr__(self):
        keys = ", ".join(k for k in vars(self) if not k.startswith("_"))
        return f"Result({keys})"

    def fmt(self, name: str, *keys, digits: int | None = None) -> str:
        """``getattr(self, name)[keys...]`` printed by :func:`robust_format` with its accuracy
        ``self.accuracy[name][keys...]`` (a scalar accuracy applies to every entry);
        ``digits=0``: sign and order of magnitude only (:func:`robust_magnitude`); default: the
        result's ``digits[name]`` if it has one (a number that sits near a formatting edge at 4
        digits is printed with fewer), else 4."""
        if digits is None:
            digits = getattr(self, "digits", {}).get(name, 4)
        value, acc = getattr(self, name), self.accuracy[name]
        for k in keys:
            value = value[k]
            acc = acc[k] if np.ndim(acc) or isinstance(acc, dict) else acc
        if digits == 0:
            return robust_magnitude(float(value), float(acc))
        return robust_format(float(value), float(acc), digits=digits)


#: mode -> settings, per experiment. Values common to both modes are given once.
SETTINGS: dict[str, dict] = {
    "ode_vs_sgd": dict(
        common=dict(K=2, M=2, eta=0.5, sigma=0.01, alpha_max=300.0, n_points=16),
        erf=dict(kind="random"),
        relu=dict(kind="small", eta=0.5, alpha_max=300.0),
        fast=dict(N=500, runs_full=2, runs_reduced=8),
        full=dict(N=1000, runs_full=4, runs_reduced=32),
    ),
    "first_layer": dict(
        common=dict(M=2, L=[0, 1, 2, 3, 4], eta=0.1, sigma=0.1),
        erf=dict(kind="random", alpha_read=1e4),
        linear=dict(kind="small", alpha_read=1e4),
        # ReLU from the small initialisation is slow at eta = 0.1 (long plateaus); at eta = 0.2
        # both ODE and SGD have converged by alpha = 1e3
        relu=dict(kind="small", eta=0.2, alpha_read=1e3),
        # ReLU ODEs cost ~ K^4 per step (the exact I4): the fast mode integrates K <= M + 2 only
        fast=dict(relu_ode_L=[0, 1, 2], relu_N=500, relu_runs=4, relu_sgd_alpha=1000.0),
        full=dict(relu_ode_L=[0, 1, 2, 3, 4], relu_N=1000, relu_runs=8, relu_sgd_alpha=1000.0),
    ),
    "collapse": dict(
        common=dict(M=2, L=[0, 1, 2, 3, 4],
                    eta_sigma=[(0.02, 0.1), (0.05, 0.1), (0.1, 0.1), (0.2, 0.1), (0.1, 0.5),
                               (0.2, 0.5)]),
        fast=dict(),
        full=dict(),
    ),
    "both_layers": dict(
        # v_init = "scaled": the authors' start, student v at its first layer's scale
        # (tsode.initial_state); "ones" is the contrast v = 1 of section "initialisation"
        common=dict(M=2, sigma=0.1, sgd_K=[2, 4], n_points=12, v_init="scaled"),
        erf=dict(K=[2, 3, 4, 5, 6], kind="random", eta=0.1, alpha_read=1e7),
        # ReLU with both layers has no finite fixed point either (eps_g keeps decreasing while v
        # shrinks); read at alpha = 1e4, where the cached SGD ensemble is read too
        relu=dict(K=[2, 3, 4, 5, 6], kind="small", eta=0.1),
        # linear: no fixed point, eps_g ~ alpha^-1/2 is reached only by alpha ~ 1e6-1e7
        linear=dict(K=[2, 3, 4, 5, 6], kind="small", eta=0.1, alpha_read=1e7),
        fast=dict(N=500, runs=4, alpha_sgd=300.0, relu_alpha_read=1e4),
        full=dict(N=1000, runs=8, alpha_sgd=1000.0, relu_alpha_read=1e4),
    ),
    "fixed_points": dict(
        # (activation, layers) -> (initialisation, eta, alpha of the integration, polish?)
        # polish: True = Newton from the end state; False = no fixed point, keep the end state;
        # "symmetric" = slow mode (chapter 2): keep the end state, spectrum of the symmetric
        # fixed point (erf_symmetric_fixed_point), which is unstable
        common=dict(K=4, M=2, sigma=0.1, cases=[
            ("erf", "first", "random", 0.1, 1e4, "symmetric"),
            ("erf", "both", "random", 0.1, 1e6, True),
            ("relu", "first", "small", 0.2, 1e3, True),
            ("relu", "both", "small", 0.1, 1e4, True),
            ("linear", "first", "small", 0.1, 1e4, True),
            ("linear", "both", "small", 0.1, 1e5, False),  # no finite fixed point
        ]),
        fast=dict(),
        full=dict(),
    ),
    "slow_mode": dict(
        common=dict(M=2, K=4, eta=0.1, sigma=0.1, kind="random"),
        fast=dict(alpha_max=1e5),
        full=dict(alpha_max=1e6),
    ),
}


def settings(name: str, mode: str, part: str | None = None, overrides=None) -> dict:
    """The settings of experiment ``name`` in ``mode`` (and activation/part ``part``).

    ``overrides`` (a dict or a tuple of (key, value) pairs) replaces the settings of the same
    name; keys this experiment does not have are ignored (other experiments of the chapter may
    use them; :func:`check_overrides` rejects keys that no experiment knows).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    spec = SETTINGS[name]
    out = dict(spec.get("common", {}))
    if part is not None:
        out.update(spec.get(part, {}))
    out.update(spec[mode])
    for key, value in dict(overrides or {}).items():
        if key in out:
            out[key] = value
    return out


def known_settings() -> set:
    """Every setting name used by some experiment (any part, any mode)."""
    return {k for spec in SETTINGS.values() for part in spec.values() for k in part}


def check_overrides(overrides) -> dict:
    """``overrides`` as a dict; ValueError for names that no experiment uses."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - known_settings())
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(known_settings())}")
    return overrides


def _key(overrides) -> tuple:
    """A hashable, order-independent form of an overrides dict (for caching)."""
    return tuple(sorted(check_overrides(overrides).items(), key=lambda kv: kv[0]))


def _seed(seed, *salt) -> int:
    """A reproducible sub-seed from a base seed and integers (independent streams per setting)."""
    return int(np.random.SeedSequence([int(seed), *map(int, salt)]).generate_state(1)[0])


def start(K, M, kind, *, N=10_000, seed=0, v="ones", v_star="ones") -> OrderParameters:
    """Initial state with an orthonormal teacher (T = I) and a student sampled in N dimensions.

    ``kind="random"``: student entries N(0, 1) (Q ≈ I, R = O(N^-1/2)); ``kind="small"``: entries
    with standard deviation 1e-3. Thin wrapper of :func:`tsode.initial_state`.
    """
    return initial_state(K, M, kind=kind, N=N, seed=seed, v=v, v_star=v_star,
                         orthogonal_teacher=True)


def _sim(state0, setup, N, alpha_max, *, engine, seed, n_runs, alphas):
    from ..simulate import simulate

    return simulate(state0, setup, N, alpha_max, engine=engine, seed=seed, n_runs=n_runs,
                    alphas=alphas)


def align_units(traj, R_ref):
    """Student units of every run relabelled to best match the reference overlaps ``R_ref`` (K, M).

    SGD runs from the same initial state may specialise their units on the teachers in different
    orders (the problem is symmetric under permuting student units); averaging R over runs then
    mixes the assignments. For each run this picks the permutation p of the students maximising
    Σ_k R_final[p(k)] · R_ref[k] and applies it to Q, R and v at all times.
    Returns a dict with ``Q`` (runs, T, K, K), ``R`` (runs, T, K, M), ``v`` (runs, T, K).
    """
    from scipy.optimize import linear_sum_assignment

    Q = np.asarray(traj.Q).reshape((-1,) + traj.Q.shape[-3:])
    R = np.asarray(traj.R).reshape((-1,) + traj.R.shape[-3:])
    v = np.asarray(traj.v).reshape((-1,) + traj.v.shape[-2:])
    Qo, Ro, vo = np.empty_like(Q), np.empty_like(R), np.empty_like(v)
    for i in range(Q.shape[0]):
        score = np.asarray(R_ref) @ R[i, -1].T  # score[k, j]: reference unit k vs run unit j
        _, perm = linear_sum_assignment(-score)
        Qo[i] = Q[i][:, perm][:, :, perm]
        Ro[i] = R[i][:, perm]
        vo[i] = v[i][:, perm]
    return dict(Q=Qo, R=Ro, v=vo)


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        res = fn(*args, **kwargs)
        res.seconds = time.perf_counter() - t0
        return res

    return wrapper


# ==========================================================================================
# chapter 1: the ODEs and their validity
# ==========================================================================================
@_timed
def ode_vs_sgd(mode: str = "full", activation: str = "erf", seed: int = 0, overrides=None) -> Result:
    """ε_g(α) and the overlaps: ODE against full and reduced SGD from the same initial state.

    erf: K = M = 2 from the "large" initialisation, with the plateau of unspecialised units and
    the escape to the specialised solution. relu: the same from the "small" initialisation.
    Returns ``ode`` (Trajectory), ``sgd`` ({"full": Trajectory, "reduced": Trajectory}, multi-run),
    ``N`` and the key numbers ``eg_ode_end``, ``eg_sgd_end`` (mean of the reduced runs at the
    last time) and ``plateau`` (ODE ε_g at the middle of the plateau, erf only).
    """
    s = settings("ode_vs_sgd", mode, activation, check_overrides(overrides))
    K, M, N = s["K"], s["M"], s["N"]
    state0 = start(K, M, s["kind"], N=N, seed=_seed(seed, 1))
    setup = Setup(activation, eta=s["eta"], sigma=s["sigma"])
    amax = s["alpha_max"]
    alphas_sgd = np.concatenate([[0.0], np.geomspace(0.1, amax, s["n_points"])])
    ode = integrate(state0, setup, amax, alphas=np.concatenate([[0.0], np.geomspace(1e-2, amax, 300)]))
    sgd = {
        "full": _sim(state0, setup, N, amax, engine="full", seed=_seed(seed, 2),
                     n_runs=s["runs_full"], alphas=alphas_sgd),
        "reduced": _sim(state0, setup, N, amax, engine="reduced", seed=_seed(seed, 3),
                        n_runs=s["runs_reduced"], alphas=alphas_sgd),
    }
    aligned = {k: align_units(t, ode.R[-1]) for k, t in sgd.items()}
    alts = ode_variants(state0, setup, ode)
    res = Result(ode=ode, sgd=sgd, aligned=aligned, N=N, setup=setup, state0=state0, settings=s,
                 alpha_end=amax, eg_ode_end=float(ode.eg[-1]),
                 eg_sgd_end={k: float(np.mean(np.atleast_2d(t.eg)[:, -1])) for k, t in sgd.items()},
                 accuracy=dict(eg_ode_end=float(spread(lambda t: t.eg[-1], ode, alts))))
    if activation == "erf":
        res.plateau_alpha, res.plateau = _plateau(ode)
        res.accuracy.update(plateau=float(spread(lambda t: _plateau(t)[1], ode, alts)),
                            plateau_alpha=float(spread(lambda t: _plateau(t)[0], ode, alts)))
    return res


def _plateau(ode):
    """(α, ε_g) where the ODE's logarithmic slope is smallest in magnitude, before the escape."""
    a, e = ode.alpha[1:], ode.eg[1:]
    slope = np.gradient(np.log(e), np.log(a))
    mid = (a > 1) & (a < a[np.argmin(slope)])
    i = np.flatnonzero(mid)[np.argmin(np.abs(slope[mid]))]
    return float(a[i]), float(e[i])


# ==========================================================================================
# chapter 2: training the first layer only
# ==========================================================================================
@functools.lru_cache(maxsize=None)
def _ansatz(M, L, eta, sigma):
    """(ε_g*, accuracy) at the exact erf first-layer fixed point on the set where the extra
    units coincide (:func:`tsode.asymptotics.erf_symmetric_fixed_point`); the accuracy is the
    change of ε_g* when Newton re-polishes from the state perturbed at PERTURBATION."""
    from ..asymptotics import erf_symmetric_fixed_point

    fp = erf_symmetric_fixed_point(M, L, eta, sigma)
    return float(fp.eg), fixed_point_accuracy(fp)


@functools.lru_cache(maxsize=None)
def _first_layer_odes(mode: str, act: str, seed: int, ov: tuple = (), variant: bool = False):
    """{L: Trajectory} of the first-layer ODEs; ``variant``: the same redone by
    :func:`ode_variants` (a list of two per L)."""
    s = settings("first_layer", mode, act, ov)
    out = {}
    for L in s.get(f"{act}_ode_L", s["L"]):
        K = s["M"] + L
        state0 = start(K, s["M"], s["kind"], N=10_000, seed=_seed(seed, 20, K))
        setup = Setup(act, eta=s["eta"], sigma=s["sigma"])
        if variant:
            out[L] = ode_variants(state0, setup, _first_layer_odes(mode, act, seed, ov)[L])
            continue
        out[L] = integrate(state0, setup, s["alpha_read"],
                           alphas=np.concatenate([[0.0], np.geomspace(1e-2, s["alpha_read"], 250)]))
    return out


def _end_accuracy(mode, act, seed, ov) -> dict:
    """{L: accuracy (:func:`spread`) of ε_g at the end of the first-layer ODE}."""
    base, alts = (_first_layer_odes(mode, act, seed, ov, v) for v in (False, True))
    return {L: float(spread(lambda t: t.eg[-1], base[L], alts[L])) for L in base}


@_timed
def first_layer_curves(mode: str = "full", seed: int = 0, overrides=None) -> Result:
    """erf, first layer only (v = v* = 1): ε_g(α) for K = M, ..., M + L from the ODE.

    Returns ``trajectories`` {L: Trajectory}, ``eg_ansatz`` {L: ε_g* of the symmetric fixed
    point} (when :mod:`tsode.asymptotics` provides it) and the settings.
    """
    ov = _key(overrides)
    s = settings("first_layer", mode, "erf", ov)
    trajs = _first_layer_odes(mode, "erf", seed, ov)
    ans = {L: _ansatz(s["M"], L, s["eta"], s["sigma"]) for L in s["L"]}
    return Result(trajectories=trajs, eg_ansatz={L: a[0] for L, a in ans.items()}, M=s["M"],
                  eta=s["eta"], sigma=s["sigma"], alpha_read=s["alpha_read"],
                  eg_read={L: float(t.eg[-1]) for L, t in trajs.items()}, settings=s,
                  accuracy=dict(eg_read=_end_accuracy(mode, "erf", seed, ov),
                                eg_ansatz={L: a[1] for L, a in ans.items()}))


@_timed
def first_layer_final(mode: str = "full", seed: int = 0, overrides=None) -> Result:
    """ε_g* against L for erf (ODE, exact symmetric fixed point, leading order), linear (ODE,
    exact formula) and ReLU (ODE and SGD), first layer only.

    The printed numbers ``erf_ratio`` (ODE / symmetric fixed point, L = 0, 1),
    ``linear_ratio`` (ODE / exact) and ``relu_ode`` come with their ``accuracy``.
    """
    ov = _key(overrides)
    s_erf = settings("first_layer", mode, "erf", ov)
    M, eta, sigma, Ls = s_erf["M"], s_erf["eta"], s_erf["sigma"], s_erf["L"]
    erf_odes = _first_layer_odes(mode, "erf", seed, ov)
    ans = [_ansatz(M, L, eta, sigma) for L in Ls]
    erf = dict(ode=np.array([erf_odes[L].eg[-1] for L in Ls]), alpha=s_erf["alpha_read"],
               ansatz=np.array([a[0] for a in ans]),
               leading=np.array([erf_eg_star_leading(M, L, eta, sigma) for L in Ls]))
    s_lin = settings("first_layer", mode, "linear", ov)
    lin_odes = _first_layer_odes(mode, "linear", seed, ov)
    linear = dict(ode=np.array([lin_odes[L].eg[-1] for L in Ls]), alpha=s_lin["alpha_read"],
                  exact=np.array([linear_eg_star(M + L, eta, sigma) for L in Ls]))
    relu = _first_layer_relu(mode, seed, ov)
    acc = {act: _end_accuracy(mode, act, seed, ov) for act in ("erf", "linear", "relu")}
    return Result(L=list(Ls), M=M, eta=eta, sigma=sigma, erf=erf, linear=linear, relu=relu,
                  settings=s_erf, erf_ratio=erf["ode"] / erf["ansatz"],
                  linear_ratio=linear["ode"] / linear["exact"], relu_ode=relu["ode"],
                  accuracy=dict(
                      erf_ratio=ratio_accuracy(erf["ode"], [acc["erf"][L] for L in Ls],
                                                erf["ansatz"], [a[1] for a in ans]),
                      linear_ratio=ratio_accuracy(linear["ode"],
                                                   [acc["linear"][L] for L in Ls],
                                                   linear["exact"], 0.0),
                      relu_ode=np.array(list(acc["relu"].values()))))


def _first_layer_relu(mode, seed, ov=()):
    """ReLU, first layer only: ODE and reduced SGD."""
    s = settings("first_layer", mode, "relu", ov)
    odes = _first_layer_odes(mode, "relu", seed, ov)
    out = dict(alpha=s["alpha_read"], N=s["relu_N"], ode_L=list(odes), eta=s["eta"],
               ode=np.array([odes[L].eg[-1] for L in odes]))
    means, errs = [], []
    for L in s["L"]:
        K = s["M"] + L
        state0 = start(K, s["M"], "small", N=10_000, seed=_seed(seed, 20, K))
        setup = Setup("relu", eta=s["eta"], sigma=s["sigma"])
        a = s["relu_sgd_alpha"]
        tr = _sim(state0, setup, s["relu_N"], a, engine="reduced", seed=_seed(seed, 21, K),
                  n_runs=s["relu_runs"], alphas=np.linspace(0.8 * a, a, 11))
        per_run = np.atleast_2d(tr.eg).mean(axis=1)  # time average over the last 20 %
        means.append(per_run.mean())
        errs.append(per_run.std(ddof=1) / np.sqrt(per_run.size))
    out.update(sgd_mean=np.array(means), sgd_err=np.array(errs), sgd_alpha=s["relu_sgd_alpha"],
               runs=s["relu_runs"])
    return out


@_timed
def collapse(mode: str = "full", overrides=None) -> Result:
    """ε_g*/(ησ²) against L at the exact erf symmetric fixed point for several (η, σ)."""
    s = settings("collapse", mode, None, check_overrides(overrides))
    ratio, acc = {}, {}
    for eta, sigma in s["eta_sigma"]:
        ans = np.array([_ansatz(s["M"], L, eta, sigma) for L in s["L"]])
        ratio[(eta, sigma)], acc[(eta, sigma)] = ans.T / (eta * sigma**2)
    return Result(L=list(s["L"]), M=s["M"], ratio=ratio, settings=s, accuracy=dict(ratio=acc),
                  leading=np.array([erf_eg_star_leading(s["M"], L, 1.0, 1.0) for L in s["L"]]))


@_timed
def slow_mode(mode: str = "full", seed: int = 0, overrides=None) -> Result:
    """erf, first layer only, L = K − M = 2 from random initialisation: a long ODE integration.

    Returns the ``trajectory``, the symmetric fixed-point error ``eg_ansatz``, and the
    correlations ``extra_corr`` (T, pairs) between student units that end up unspecialised.
    """
    s = settings("slow_mode", mode, None, check_overrides(overrides))
    K, M = s["K"], s["M"]
    # extra_norm: (T, n_extra) norms Q_kk of the extra units; alpha_anti: first time at which the
    # first pair of extra units has correlation < -0.99
    state0 = start(K, M, s["kind"], N=10_000, seed=_seed(seed, 20, K))
    setup = Setup("erf", eta=s["eta"], sigma=s["sigma"])
    alphas = np.concatenate([[0.0], np.geomspace(1e-2, s["alpha_max"], 400)])
    tr = integrate(state0, setup, s["alpha_max"], alphas=alphas)
    # extra units: those least aligned with any teacher at the end
    Rf, Qf = tr.R[-1], tr.Q[-1]
    cos = np.abs(Rf) / np.sqrt(np.outer(np.diag(Qf), np.diag(tr.T)))
    spec = np.argmax(cos, axis=0)  # best student for each teacher
    extra = [k for k in range(K) if k not in set(spec.tolist())]
    pairs = [(k, l) for i, k in enumerate(extra) for l in extra[i + 1:]]
    d = np.sqrt(np.einsum("tkk->tk", tr.Q))
    corr = np.stack([tr.Q[:, k, l] / (d[:, k] * d[:, l]) for k, l in pairs], axis=1) if pairs \
        else np.zeros((tr.alpha.size, 0))
    i4 = int(np.argmin(np.abs(tr.alpha - 1e4)))
    from ..asymptotics import erf_symmetric_fixed_point, stability

    fp = erf_symmetric_fixed_point(M, K - M, s["eta"], s["sigma"])
    alts = ode_variants(state0, setup, tr)
    ev_alt, _ = stability(perturbed(fp.state), setup)
    i_pair = int(np.argmax(corr[:, 0] < -0.99)) if pairs and (corr[:, 0] < -0.99).any() else None
    return Result(trajectory=tr, K=K, M=M, eta=s["eta"], sigma=s["sigma"], extra=extra,
                  state0=state0, setup=setup,
                  extra_norm=np.stack([tr.Q[:, k, k] for k in extra], axis=1) if extra else None,
                  alpha_anti=None if i_pair is None else float(tr.alpha[i_pair]),
                  eg_ansatz=float(fp.eg), ansatz_max_real=fp.max_real,
                  ansatz_n_unstable=fp.n_unstable, end_exponent=_end_exponent(tr),
                  extra_pairs=pairs, extra_corr=corr, alpha_max=s["alpha_max"],
                  eg_1e4=float(tr.eg[i4]), eg_end=float(tr.eg[-1]), settings=s,
                  eg_1e4_ratio=float(tr.eg[i4]) / fp.eg,
                  accuracy=dict(
                      eg_1e4_ratio=float(ratio_accuracy(tr.eg[i4],
                                                         spread(lambda t: t.eg[i4], tr, alts),
                                                         fp.eg, fixed_point_accuracy(fp))),
                      ansatz_max_real=abs(float(ev_alt.real.max()) - fp.max_real),
                      end_exponent=float(spread(_end_exponent, tr, alts))))


def _decade_exponent(tr) -> float:
    """d ln ε_g / d ln α over the last decade of ``tr`` (least squares, :func:`fit_power_law`)."""
    from ..asymptotics import fit_power_law

    return fit_power_law(tr.alpha, tr.eg, alpha_min=tr.alpha[-1] / 10)[0]


def _end_exponent(tr, n: int = 20) -> float:
    """d ln ε_g / d ln α at the end of ``tr``: least-squares slope over the last n points."""
    from ..asymptotics import fit_power_law

    return fit_power_law(tr.alpha[-n:], tr.eg[-n:])[0]


# ==========================================================================================
# chapter 3: training both layers
# ==========================================================================================
def _denoiser(K, M, eta, sigma):
    """(ε_g*, accuracy) of the erf denoising fixed point (:func:`fixed_point_accuracy`)."""
    from ..asymptotics import denoising_fixed_point

    fp = denoising_fixed_point(K, M, eta, eta, sigma)
    return float(fp.eg), fixed_point_accuracy(fp)


@_timed
def both_layers(mode: str = "full", seed: int = 0, overrides=None,
                activations=("erf", "relu", "linear")) -> Result:
    """Both layers trained (η_v = η), teacher v* = 1, student v from ``v_init`` (default
    "scaled": the authors' start, v at the first layer's scale; "ones": v = 1).

    For each activation and K: the ODE from the chapter's initialisation up to ``alpha_read``
    (erf: large, ReLU and linear: small), reduced SGD (mean over runs) for K in ``sgd_K`` up to
    ``alpha_sgd``, and for erf the denoising fixed points (:func:`tsode.asymptotics.
    denoising_fixed_point`). Returns ``trajectories[act][K]``, ``sgd[act][K]``, ``K[act]``,
    ``ode[act]`` (ε_g at alpha_read), ``ode_at_sgd[act]`` (ε_g of the ODE at alpha_sgd),
    ``sgd_mean[act]``/``sgd_err[act]`` (at alpha_sgd, mean ± s.e. over runs, K in sgd_K),
    ``fixed_points`` {"erf": ε_g* of the denoisers}, ``alpha_read``, ``alpha_sgd``.
    """
    res = Result(trajectories={}, sgd={}, K={}, ode={}, ode_at_sgd={}, sgd_mean={}, sgd_err={},
                 fixed_points={}, alpha_read={}, final_v={}, final_exponent={}, settings={},
                 accuracy=dict(ode={}, fixed_points={}, fp_ratio={}, final_exponent={}),
                 fp_ratio={}, state0={}, setup={},
                 # significant digits the chapter prints of ode[act]: linear networks at
                 # alpha = 1e7 drift like alpha^-1/2 and their error is known to ~3e-5 relative
                 # at the default tolerances (it moves that much between CPUs), hence 2
                 print_digits=dict(erf=4, relu=4, linear=2))
    for act in activations:
        s = settings("both_layers", mode, act, check_overrides(overrides))
        if act == "relu":
            s["alpha_read"] = s["relu_alpha_read"]
        M, a_sgd = s["M"], s["alpha_sgd"]
        setup = Setup(act, eta=s["eta"], eta_v=s["eta"], sigma=s["sigma"])
        res.settings[act] = s
        res.K[act] = list(s["K"])
        res.alpha_read[act] = s["alpha_read"]
        res.trajectories[act], res.sgd[act], res.state0[act] = {}, {}, {}
        res.setup[act] = setup
        alphas = np.unique(np.concatenate([[0.0], np.geomspace(1e-2, s["alpha_read"], 300), [a_sgd]]))
        alphas_sgd = np.concatenate([[0.0], np.geomspace(1.0, a_sgd, s["n_points"])])
        alts = {}
        for K in s["K"]:
            state0 = start(K, M, s["kind"], N=10_000, seed=_seed(seed, 30, K), v=s["v_init"])
            tr = integrate(state0, setup, s["alpha_read"], alphas=alphas)
            res.trajectories[act][K], res.state0[act][K] = tr, state0
            alts[K] = ode_variants(state0, setup, tr)
            if K in s["sgd_K"]:
                res.sgd[act][K] = _sim(state0, setup, s["N"], a_sgd, engine="reduced",
                                       seed=_seed(seed, 31, K), n_runs=s["runs"],
                                       alphas=alphas_sgd)
        trs = res.trajectories[act]
        res.ode[act] = np.array([trs[K].eg[-1] for K in s["K"]])
        res.accuracy["ode"][act] = np.array([spread(lambda t: t.eg[-1], trs[K], alts[K])
                                             for K in s["K"]])
        i_sgd = int(np.argmin(np.abs(alphas - a_sgd)))
        res.ode_at_sgd[act] = np.array([trs[K].eg[i_sgd] for K in s["K"]])
        res.final_v[act] = {K: trs[K].v[-1].copy() for K in s["K"]}
        # local exponent d ln eps_g / d ln alpha over the last decade, per K
        res.final_exponent[act] = np.array([_decade_exponent(trs[K]) for K in s["K"]])
        res.accuracy["final_exponent"][act] = np.array(
            [spread(_decade_exponent, trs[K], alts[K]) for K in s["K"]])
        end = {K: np.atleast_2d(t.eg)[:, -1] for K, t in res.sgd[act].items()}
        res.sgd_mean[act] = np.array([end[K].mean() for K in s["sgd_K"]])
        res.sgd_err[act] = np.array([end[K].std(ddof=1) / np.sqrt(end[K].size) for K in s["sgd_K"]])
        if act == "erf":
            fps = np.array([_denoiser(K, M, s["eta"], s["sigma"]) for K in s["K"]])
            res.fixed_points[act], res.accuracy["fixed_points"][act] = fps.T
            # K eps_g* / (M eps_g*(K = M)): ~1 for denoisers
            res.fp_ratio[act] = np.array(s["K"]) * fps[:, 0] / (M * fps[0, 0])
            res.accuracy["fp_ratio"][act] = ratio_accuracy(
                np.array(s["K"]) * fps[:, 0], np.array(s["K"]) * fps[:, 1], M * fps[0, 0],
                M * fps[0, 1])
    any_s = next(iter(res.settings.values()))
    res.sgd_K, res.N, res.runs, res.alpha_sgd = any_s["sgd_K"], any_s["N"], any_s["runs"], any_s["alpha_sgd"]
    return res


# ==========================================================================================
# chapter 4: activation-dependent fixed points
# ==========================================================================================
@_timed
def fixed_points(mode: str = "full", seed: int = 0, overrides=None) -> Result:
    """The states SGD's ODE ends in, for each activation and training mode (K = 4, M = 2).

    Each case integrates the ODE from the initialisation of chapters 2 and 3 (same seeds) and,
    where a fixed point exists, polishes the end state with :func:`tsode.asymptotics.fixed_point`
    (damped Newton, reported honestly when it does not converge). Returns, keyed by the case name
    ("erf, first layer", ...): ``states`` (OrderParameters), ``eg``, ``converged`` (None when no
    polishing was attempted), ``eigenvalues`` (Jacobian of the drift at the state),
    ``n_unstable``, ``n_soft``, ``descriptions`` (:func:`tsode.asymptotics.describe`), ``alpha``,
    and, from the same case redone as in :func:`ode_variants`, ``accuracy["eg"]``,
    ``eigenvalues_alt`` and ``spectrum_text`` (:func:`spectrum_summary`).
    """
    from ..asymptotics import describe

    s = settings("fixed_points", mode, None, check_overrides(overrides))
    K, M = s["K"], s["M"]
    res = Result(states={}, eg={}, converged={}, eigenvalues={}, soft_tol={}, n_unstable={},
                 n_soft={}, descriptions={}, alpha={}, messages={}, spectrum_of={}, settings=s,
                 K=K, M=M, spectrum_text={}, eigenvalues_alt={}, accuracy=dict(eg={}),
                 # 3 digits: at 4, linear both layers (8.9954e-05 +- 4e-11) sits 24 accuracies
                 # from a rounding edge, too close for tests/test_chapters.py's boundary check
                 digits=dict(eg=3))
    for case in s["cases"]:
        act, layers, alpha = case[0], case[1], case[4]
        name = f"{act}, {layers} layer" + ("s" if layers == "both" else "")
        c = _fixed_point_case(case, s, seed)
        alts = [_fixed_point_case(case, s, seed, TOL_FACTOR, PERTURBATION),
                _fixed_point_case(case, s, seed, TIGHT, 0.0)]
        ev, soft_tol = np.asarray(c["ev"]), c["soft_tol"]
        res.alpha[name] = alpha
        res.converged[name] = c["converged"]
        if "message" in c:
            res.messages[name] = c["message"]
        res.spectrum_of[name] = c["spectrum_of"]
        res.states[name] = c["state"]
        res.eg[name] = generalisation_error(c["state"], act)
        res.accuracy["eg"][name] = float(spread(lambda c: generalisation_error(c["state"], act),
                                                c, alts))
        res.eigenvalues[name] = ev
        res.soft_tol[name] = float(soft_tol)
        res.n_unstable[name] = int(np.sum(ev.real >= soft_tol))
        res.n_soft[name] = int(np.sum(np.abs(ev.real) < soft_tol))
        res.eigenvalues_alt[name] = [np.asarray(a["ev"]) for a in alts]
        res.spectrum_text[name] = spectrum_summary(ev, res.eigenvalues_alt[name], soft_tol)
        res.descriptions[name] = describe(c["state"])
    res.linthresh = 1e-6  # |Re λ| below this is drawn on the linear part of the symlog axis
    return res


def _fixed_point_case(case, s, seed, tol_factor: float = 1.0, rel: float = 0.0) -> dict:
    """One case of :func:`fixed_points`: integrate (from the start perturbed at ``rel`` relative,
    at ``tol_factor`` times the tolerances), polish, and the spectrum (state, ev, soft_tol, ...).
    """
    from ..asymptotics import erf_symmetric_fixed_point, fixed_point, stability

    act, layers, kind, eta, alpha, polish = case
    K, M = s["K"], s["M"]
    setup = Setup(act, eta=eta, eta_v=eta if layers == "both" else 0.0, sigma=s["sigma"])
    salt = (20, K) if layers == "first" else (30, K)
    state0 = start(K, M, kind, N=10_000, seed=_seed(seed, *salt))
    variant = rel > 0
    tr = integrate(perturbed(state0, rel) if variant else state0, setup, alpha,
                   alphas=np.array([0.0, alpha]), rtol=tol_factor * RTOL, atol=tol_factor * ATOL)
    out = dict(state=tr.final, converged=None)
    if polish is True:
        fp = fixed_point(tr.final, setup, raise_on_failure=False)
        out.update(converged=bool(fp.converged), message=fp.message)
        if fp.converged:
            out.update(state=fp.state, ev=fp.eigenvalues, soft_tol=fp.soft_tol,
                       spectrum_of="fixed point")
        else:
            ev, soft_tol = stability(tr.final, setup)
            out.update(ev=ev, soft_tol=soft_tol,
                       spectrum_of="end of the integration (Newton did not converge)")
    elif polish == "symmetric":
        fp = erf_symmetric_fixed_point(M, K - M, eta, s["sigma"])
        ev, soft_tol = (fp.eigenvalues, fp.soft_tol) if not variant else \
            stability(perturbed(fp.state, rel), setup)
        out.update(ev=ev, soft_tol=soft_tol, spectrum_of="symmetric fixed point",
                   message=f"slow mode: state at alpha = {alpha:g}; spectrum of {fp}")
    else:
        ev, soft_tol = stability(tr.final, setup)
        out.update(ev=ev, soft_tol=soft_tol,
                   spectrum_of="end of the integration (no fixed point)")
    return out


# chapter 1 (modules of their own; they register their SETTINGS)
from . import fig1 as _fig1  # noqa: E402,F401
from . import split as _split  # noqa: E402,F401  (chapter 4, split units)
from . import convergence as _convergence  # noqa: E402


def convergence(mode: str = "full", seed: int = 0, overrides=None) -> Result:
    """Chapter 1's convergence test (:func:`tsode.book.convergence.convergence`)."""
    return _convergence.convergence(mode, seed, overrides)
