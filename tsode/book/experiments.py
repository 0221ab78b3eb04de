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



from ._legacy import (MODES, SETTINGS, Result, _key, _seed, _sim, _timed,  # noqa: E402,F401
                      check_overrides, known_settings, settings, start)


# the experiments live in one module per chapter; they are re-exported here
from .chapter import decade_exponent as _decade_exponent  # noqa: E402,F401
from .chapter import end_exponent as _end_exponent  # noqa: E402,F401
from .odes import _plateau, align_units, ode_vs_sgd  # noqa: E402,F401
from .first_layer import (_ansatz, collapse, first_layer_curves,  # noqa: E402,F401
                          first_layer_final, slow_mode)
from .both_layers import (BothLayersSettings, _denoiser, both_layers,  # noqa: E402,F401
                          records as both_layers_records)
from .fixed_point_maps import _fixed_point_case, fixed_points  # noqa: E402,F401
# chapter 1 (modules of their own; they register their SETTINGS)
from . import fig1 as _fig1  # noqa: E402,F401
from . import split as _split  # noqa: E402,F401  (chapter 4, split units)
from . import convergence as _convergence  # noqa: E402


def convergence(mode: str = "full", seed: int = 0, overrides=None) -> Result:
    """Chapter 1's convergence test (:func:`tsode.book.convergence.convergence`)."""
    return _convergence.convergence(mode, seed, overrides)
