r"""Asymptotics of online SGD: fixed points, final generalisation errors, stability, slow modes.

A thin front door that re-exports the analysis modules (import from either):

* :mod:`tsode.fixed_points` — :func:`fixed_point` (damped Newton), :class:`FixedPoint`,
  :func:`stability`, :func:`integrate_to_fixed_point`, :class:`FixedPointError`.
* :mod:`tsode.ansatz` — closed forms :func:`linear_eg_star`, :func:`erf_eg_star_leading`; the
  erf symmetric ansatz :func:`erf_symmetric_fixed_point` (:data:`ANSATZ_PARAMETERS`); the
  denoiser :func:`denoising_fixed_point`.
* :mod:`tsode.roles` — :func:`describe`, :class:`Description`: which student unit does what.
* :mod:`tsode.classification` — :func:`classify`, :class:`Classification`: is a state a fixed
  point, a saddle or still drifting ("final" as a checked word).
* :mod:`tsode.slow_modes` — :func:`slow_mode_scan`, :class:`SlowModeScan`,
  :func:`fit_power_law`, :func:`power_law_slope_error`, :func:`local_exponents`: slow drifts and
  power-law decays.
"""

from .ansatz import (
    ANSATZ_PARAMETERS,
    denoising_fixed_point,
    erf_eg_star_leading,
    erf_symmetric_fixed_point,
    linear_eg_star,
)
from .classification import Classification, classify
from .fixed_points import (
    FixedPoint,
    FixedPointError,
    fixed_point,
    integrate_to_fixed_point,
    stability,
)
from .roles import Description, describe
from .slow_modes import (
    SlowModeScan,
    fit_power_law,
    local_exponents,
    power_law_slope_error,
    slow_mode_scan,
)

__all__ = [
    "Classification",
    "classify",
    "FixedPoint",
    "FixedPointError",
    "fixed_point",
    "stability",
    "integrate_to_fixed_point",
    "linear_eg_star",
    "erf_eg_star_leading",
    "erf_symmetric_fixed_point",
    "ANSATZ_PARAMETERS",
    "denoising_fixed_point",
    "Description",
    "describe",
    "SlowModeScan",
    "slow_mode_scan",
    "fit_power_law",
    "local_exponents",
    "power_law_slope_error",
]
