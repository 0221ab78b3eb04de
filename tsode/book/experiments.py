r"""The experiments behind the book's figures: one import point for the chapters and the tests.

Each experiment lives in the module of its chapter and follows the chapter contract
(:mod:`tsode.book.chapter`): it takes its own frozen settings dataclass (``XSettings.full()``,
``XSettings.fast()``, ``.replace(...)``) or a mode string with an ``overrides`` dict, and a named
``seed``; it returns a frozen, documented result dataclass whose fields the notebooks read.

* chapter 1 (:mod:`~tsode.book.odes`, :mod:`~tsode.book.fig1`, :mod:`~tsode.book.convergence`):
  :func:`ode_vs_sgd`, :func:`fig1`, :func:`convergence`;
* chapter 2 (:mod:`~tsode.book.first_layer`, :mod:`~tsode.book.noiseless`, the long-time part of
  :mod:`~tsode.book.ensembles`): :func:`first_layer_curves`, :func:`first_layer_final`,
  :func:`collapse`, :func:`slow_mode`;
  the limit α → ∞ for even L (:mod:`~tsode.book.pair_limit`): :func:`pair_limit`;
* chapter 3 (:mod:`~tsode.book.both_layers`, :mod:`~tsode.book.ensembles`,
  :mod:`~tsode.book.start_spread`): :func:`both_layers`, :func:`start_spread`;
* chapter 4 (:mod:`~tsode.book.fixed_point_maps`, :mod:`~tsode.book.split`):
  :func:`fixed_points`, :func:`split_units`;
* chapter 5 (:mod:`~tsode.book.finite_n`, beyond the paper): :func:`finite_n`.

``full`` is the mode of the committed notebooks (CI re-executes them under nbval); ``fast`` has
fewer runs, shorter times and smaller N for the simulations.

Conventions are those of the package (DESIGN.md §2): ``erf`` means erf(x/√2), σ is the standard
deviation of the label noise, ε_g is measured against the noiseless teacher, α = steps/N. Teachers
are orthonormal (T = I exactly) and students start either "large" (entries N(0, 1), used for
sigmoidal networks) or "small" (entries of standard deviation 1e-3, used for ReLU and linear
networks), sampled in N dimensions so that the ODE and the simulations start from the same
macroscopic point.
"""

from __future__ import annotations

from .accuracy import (claimed, ode_variants, perturbed, robust_format, robust_magnitude,
                       spectrum_summary, spread)
from .both_layers import BothLayers, BothLayersSettings, both_layers
from .both_layers import records as both_layers_records
from .chapter import MODES, REGISTRY, Result, Settings, check_overrides, known_settings, start
from .convergence import Convergence, ConvergenceSettings, convergence
from .ensembles import (Initialisation, LongTimes, LongTimesSettings, ReluLateDrift,
                        SgdAtReadTime, initialisation_contrast, long_times, relu_late_drift,
                        sgd_at_read_time)
from .fig1 import Fig1, Fig1Settings, fig1
from .finite_n import FiniteN, FiniteNSettings, finite_n
from .first_layer import (Collapse, CollapseSettings, FirstLayerCurves, FirstLayerFinal,
                          FirstLayerSettings, SlowMode, SlowModeSettings, collapse,
                          first_layer_curves, first_layer_final, slow_mode)
from .fixed_point_maps import Case, FixedPoints, FixedPointsSettings, fixed_points
from .noiseless import Noiseless, NoiselessSettings, noiseless
from .pair_limit import PairLimit, PairLimitSettings, pair_limit
from .odes import OdeVsSgd, OdeVsSgdSettings, align_units, ode_vs_sgd
from .split import SplitUnits, SplitUnitsSettings, split_units
from .start_spread import StartSpread, StartSpreadSettings, start_spread

__all__ = [
    "MODES", "REGISTRY", "Result", "Settings", "check_overrides", "known_settings", "start",
    "ode_vs_sgd", "OdeVsSgd", "OdeVsSgdSettings", "align_units",
    "fig1", "Fig1", "Fig1Settings", "convergence", "Convergence", "ConvergenceSettings",
    "first_layer_curves", "first_layer_final", "FirstLayerCurves", "FirstLayerFinal",
    "FirstLayerSettings", "collapse", "Collapse", "CollapseSettings",
    "slow_mode", "SlowMode", "SlowModeSettings", "noiseless", "Noiseless", "NoiselessSettings",
    "pair_limit", "PairLimit", "PairLimitSettings",
    "long_times", "LongTimes", "LongTimesSettings", "relu_late_drift", "ReluLateDrift",
    "sgd_at_read_time", "SgdAtReadTime", "initialisation_contrast", "Initialisation",
    "both_layers", "BothLayers", "BothLayersSettings", "both_layers_records",
    "start_spread", "StartSpread", "StartSpreadSettings",
    "fixed_points", "FixedPoints", "FixedPointsSettings", "Case",
    "split_units", "SplitUnits", "SplitUnitsSettings",
    "finite_n", "FiniteN", "FiniteNSettings",
    "claimed", "robust_format", "robust_magnitude", "spectrum_summary", "perturbed",
    "ode_variants", "spread",
]
