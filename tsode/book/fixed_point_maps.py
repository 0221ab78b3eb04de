r"""Chapter 4, activation-dependent fixed points: the states the ODE ends in, their roles and
spectra, for each activation and training mode."""

from __future__ import annotations

import functools

import numpy as np

from ..ode import integrate
from ..order_parameters import Setup, generalisation_error
from .accuracy import (ATOL, PERTURBATION, RTOL, TIGHT, TOL_FACTOR, fixed_point_accuracy,
                       ode_variants, perturbed, ratio_accuracy, spectrum_summary, spread)
from .chapter import decade_exponent, end_exponent, start
from ._legacy import Result, _key, _seed, _sim, _timed, check_overrides, settings


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
