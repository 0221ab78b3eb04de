"""tsode: online SGD in two-layer teacher-student networks (Goldt et al., NeurIPS 2019).

Three engines for the same dynamics — the N -> infinity ODEs for the order parameters
(:func:`integrate`), N-dimensional SGD and an exact reduced finite-N simulator
(:func:`simulate`) — plus the asymptotic analysis (:mod:`tsode.asymptotics`).
"""

from ._compile_notice import install as _install_compile_notice
from .activations import ACTIVATIONS, Activation, activation
from .asymptotics import FixedPoint, FixedPointError, describe, fixed_point
from .ode import DivergenceError, StallError, drift, integrate
from .order_parameters import OrderParameters, Setup, generalisation_error, initial_state
from .simulate import simulate
from .sweeps import sweep
from .trajectory import Trajectory

__version__ = "0.1.0"

_install_compile_notice()  # one stderr line while numba compiles the kernels the first time

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "activation",
    "OrderParameters",
    "Setup",
    "generalisation_error",
    "initial_state",
    "integrate",
    "simulate",
    "sweep",
    "drift",
    "DivergenceError",
    "StallError",
    "Trajectory",
    "FixedPoint", "FixedPointError", "fixed_point", "describe",
]
