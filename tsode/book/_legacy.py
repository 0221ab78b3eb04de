"""Transitional: the dict settings and namespace results of the experiments not yet moved to
the chapter contract (:mod:`tsode.book.chapter`). Re-exported by :mod:`tsode.book.experiments`."""

from __future__ import annotations

import functools
import time
from types import SimpleNamespace

import numpy as np

from .accuracy import robust_format, robust_magnitude

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
    from .chapter import known_settings as registered

    return registered() | {k for spec in SETTINGS.values() for part in spec.values() for k in part}


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


from .chapter import run_sgd as _sim  # noqa: E402
from .chapter import start  # noqa: E402


def _timed(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        res = fn(*args, **kwargs)
        res.seconds = time.perf_counter() - t0
        return res

    return wrapper
