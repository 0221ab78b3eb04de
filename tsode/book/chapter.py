r"""The chapter contract: what every experiment of the book takes and returns.

Every experiment behind a figure is a function ``experiment(settings, seed=0)``:

* **settings** — a frozen :class:`Settings` dataclass of its own (one per experiment, registered
  by name with :func:`register`). ``MySettings.full()`` gives the settings of the committed
  notebooks, ``MySettings.fast()`` fewer runs and shorter times; per-activation variants are
  *parts* (``MySettings.full("relu")``). Changes go through :meth:`Settings.replace` (a checked
  :func:`dataclasses.replace`): an unknown name raises a ValueError naming it and the known ones.
  For convenience the experiments also accept a mode string (``"fast"``/``"full"``) with an
  ``overrides`` dict, the form the notebooks' parameter cell uses.
* **result** — a frozen, documented :class:`Result` dataclass holding every array a figure draws
  and every number a page prints or glues, each with its numerical accuracy in ``accuracy``
  (printed by :meth:`Result.fmt` with the digits that accuracy supports). Notebook cells only
  read fields.
* **seed** — the base seed of the notebook's parameter cell; every random draw gets an
  independent named stream from :func:`seed_for` (:data:`SEEDS`). Streams are shared only where a
  name says so (chapter 4 starts from chapter 2's and 3's initial states on purpose).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..order_parameters import OrderParameters, initial_state
from .accuracy import robust_format, robust_magnitude

__all__ = ["MODES", "SEEDS", "Settings", "Result", "register", "REGISTRY", "settings_of",
           "known_settings", "check_overrides", "seed_for", "timed", "start", "shared_start",
           "run_sgd", "decade_exponent", "end_exponent"]

MODES = ("fast", "full")

#: Named random streams: name -> salt of :func:`seed_for`. Two draws share a stream only when
#: they use the same name (and index).
SEEDS: dict[str, int] = {
    "ode_vs_sgd.start": 1,            # chapter 1: initial state of ODE vs SGD
    "ode_vs_sgd.full": 2,             # chapter 1: full (N-dimensional) SGD runs
    "ode_vs_sgd.reduced": 3,          # chapter 1: reduced SGD runs
    "convergence.start": 10,          # chapter 1: convergence test, initial state
    "convergence.runs": 11,           # chapter 1: convergence test, runs per N (index: N's rank)
    "convergence.bootstrap": 12,      # chapter 1: bootstrap of the fitted exponents
    "first_layer.start": 20,          # chapters 2 and 4: first-layer initial state (index: K)
    "first_layer.sgd": 21,            # chapter 2: first-layer ReLU SGD (index: K)
    "both_layers.start": 30,          # chapters 3 and 4: both-layer initial state (index: K)
    "both_layers.sgd": 31,            # chapter 3: both-layer SGD (index: K)
    "initialisation.v_star": 32,      # chapter 3: the teacher's random second layer
    "fig1.start": 40,                 # chapter 1, Fig. 1: initial state (index: K[, start])
    "fig1.single": 41,                # chapter 1, Fig. 1: the single SGD run (index: K)
    "fig1.runs": 42,                  # chapter 1, Fig. 1: the reduced ensemble (index: K[, start])
    "fig1.gap_start": 47,             # chapter 1, Fig. 1: starts of the gap test (N, K, start)
    "fig1.gap_runs": 48,              # chapter 1, Fig. 1: runs of the gap test (N, K, start)
    "noiseless.start": 27,            # chapter 2, sigma = 0: SGD starts (K, start)
    "noiseless.sgd": 28,              # chapter 2, sigma = 0: SGD runs (K, start)
}


def seed_for(seed: int, name: str, *index: int) -> int:
    """A reproducible sub-seed of the base ``seed`` for the stream ``name`` (:data:`SEEDS`),
    optionally indexed (e.g. by K): ``SeedSequence([seed, SEEDS[name], *index])``."""
    if name not in SEEDS:
        raise ValueError(f"unknown seed stream {name!r}; known: {sorted(SEEDS)}")
    return int(np.random.SeedSequence([int(seed), SEEDS[name], *map(int, index)])
               .generate_state(1)[0])


# ------------------------------------------------------------------------------------------
# settings
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Base of every experiment's settings (a frozen dataclass; subclasses add the fields).

    The field defaults are the full-mode values. Class tables adjust them:

    * ``PARTS`` — part (e.g. an activation) -> values differing from the defaults;
    * ``MODE_VALUES`` — ``"fast"``/``"full"`` -> values of that mode;
    * ``PART_MODE_VALUES`` — ``(part, mode)`` -> values of that part in that mode.
    """

    PARTS: ClassVar[dict] = {}
    MODE_VALUES: ClassVar[dict] = {}
    PART_MODE_VALUES: ClassVar[dict] = {}

    def __post_init__(self):
        # lists given as values (e.g. an override {"L": [0, 1]}) are stored as tuples, so that
        # settings stay immutable and hashable (experiments cache on them)
        for name in self.names():
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    @classmethod
    def of(cls, mode: str = "full", part: str | None = None, overrides=None):
        """The settings of ``mode`` and ``part``, with the entries of a chapter-wide
        ``overrides`` dict that name one of this class's settings (see :func:`check_overrides`
        for names that no experiment knows)."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if part is not None and part not in cls.PARTS:
            raise ValueError(f"part of {cls.__name__} must be one of {sorted(cls.PARTS)}, "
                             f"got {part!r}")
        values = {**cls.PARTS.get(part, {}), **cls.MODE_VALUES.get(mode, {}),
                  **cls.PART_MODE_VALUES.get((part, mode), {})}
        names = cls.names()
        values.update({k: v for k, v in dict(overrides or {}).items() if k in names})
        return cls(**values)

    @classmethod
    def full(cls, part: str | None = None, **changes):
        """The settings of the committed notebooks (``changes`` as in :meth:`replace`)."""
        return cls.of("full", part).replace(**changes)

    @classmethod
    def fast(cls, part: str | None = None, **changes):
        """Fewer runs, shorter times (``changes`` as in :meth:`replace`)."""
        return cls.of("fast", part).replace(**changes)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The names of the settings."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes):
        """A copy with ``changes`` (:func:`dataclasses.replace`); ValueError for a name that is
        not a setting of this experiment."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown settings {unknown} of {type(self).__name__}; "
                             f"known: {list(self.names())}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.names()}


def _frozen(value):
    if isinstance(value, (list, tuple)):
        return tuple(_frozen(v) for v in value)
    return value


#: experiment name -> its Settings class (the "Re-running" tables and the runner read it)
REGISTRY: dict[str, type[Settings]] = {}


def register(name: str):
    """Class decorator: register a Settings class under the experiment's ``name``."""

    def deco(cls):
        REGISTRY[name] = cls
        return cls

    return deco


def settings_of(experiment: str, mode_or_settings, part=None, overrides=None):
    """The settings an experiment runs with: a :class:`Settings` instance is used as given (it
    must be of the experiment's class), a mode string goes through :meth:`Settings.of`."""
    cls = REGISTRY[experiment]
    if isinstance(mode_or_settings, Settings):
        if not isinstance(mode_or_settings, cls):
            raise TypeError(f"{experiment} takes {cls.__name__}, got "
                            f"{type(mode_or_settings).__name__}")
        if overrides:
            raise ValueError("give overrides either as Settings.replace(...) or with a mode "
                             "string, not both")
        return mode_or_settings
    return cls.of(mode_or_settings, part, check_overrides(overrides))


def known_settings() -> set:
    """Every setting name of some registered experiment."""
    return {n for cls in REGISTRY.values() for n in cls.names()}


def check_overrides(overrides) -> dict:
    """``overrides`` as a dict; ValueError for names that no experiment uses."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - known_settings())
    if unknown:
        raise ValueError(f"unknown settings {unknown}; known: {sorted(known_settings())}")
    return overrides


# ------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Result:
    """Base of every experiment's result (frozen; subclasses document their fields).

    settings : the :class:`Settings` the experiment ran with.
    accuracy : name of a printed number -> its numerical accuracy (same nesting as the number:
        a float, or an array/dict indexed like it); see :mod:`tsode.book.accuracy`.
    digits : name -> significant digits printed (default 4; fewer where a number sits near a
        rounding edge or its accuracy supports fewer), or a dict of them keyed like the
        number's first key (e.g. per activation).
    seconds : wall time of the experiment.
    """

    settings: Settings | None = None
    accuracy: dict = field(default_factory=dict)
    digits: dict = field(default_factory=dict)
    seconds: float = float("nan")

    def fmt(self, name: str, *keys, digits: int | None = None) -> str:
        """``getattr(self, name)[keys...]`` printed by :func:`robust_format` with its accuracy
        ``self.accuracy[name][keys...]`` (a scalar accuracy applies to every entry);
        ``digits=0``: sign and order of magnitude only (:func:`robust_magnitude`); default:
        ``self.digits[name]`` if given (a dict: indexed by the first key), else 4."""
        if digits is None:
            digits = self.digits.get(name, 4)
            if isinstance(digits, dict):
                digits = digits[keys[0]]
        value, acc = getattr(self, name), self.accuracy[name]
        for k in keys:
            value = value[k]
            acc = acc[k] if np.ndim(acc) or isinstance(acc, dict) else acc
        if digits == 0:
            return robust_magnitude(float(value), float(acc))
        return robust_format(float(value), float(acc), digits=digits)


def timed(fn):
    """Decorator: the returned :class:`Result` carries the wall time in ``seconds``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        res = fn(*args, **kwargs)
        return dataclasses.replace(res, seconds=time.perf_counter() - t0)

    return wrapper


# ------------------------------------------------------------------------------------------
# shared steps
# ------------------------------------------------------------------------------------------
def start(K, M, kind, *, N=10_000, seed=0, v="ones", v_star="ones") -> OrderParameters:
    """Initial state with an orthonormal teacher (T = I) and a student sampled in N dimensions.

    ``kind="random"``: student entries N(0, 1) (Q ≈ I, R = O(N^-1/2)); ``kind="small"``: entries
    with standard deviation 1e-3. Thin wrapper of :func:`tsode.initial_state`.
    """
    return initial_state(K, M, kind=kind, N=N, seed=seed, v=v, v_star=v_star,
                         orthogonal_teacher=True)


#: Dimension at which the chapters' shared initial states are sampled (:func:`shared_start`).
SHARED_N = 10_000


def shared_start(stream: str, K: int, M: int, kind: str, seed: int, **v) -> OrderParameters:
    """The initial state of a K-unit student that several sections share on purpose: :func:`start`
    sampled at N = :data:`SHARED_N` from the named stream ``stream`` ("first_layer.start" or
    "both_layers.start", :data:`SEEDS`) with index K. Chapters 2 and 3 train from these states
    and chapter 4 reads their ends; ``v``: the ``v`` / ``v_star`` options of :func:`start`."""
    return start(K, M, kind, N=SHARED_N, seed=seed_for(seed, stream, K), **v)


def run_sgd(state0, setup, N, alpha_max, *, engine, seed, n_runs, alphas):
    """:func:`tsode.simulate` (imported on first use)."""
    from ..simulate import simulate

    return simulate(state0, setup, N, alpha_max, engine=engine, seed=seed, n_runs=n_runs,
                    alphas=alphas)


def decade_exponent(tr) -> float:
    """d ln ε_g / d ln α over the last decade of ``tr`` (least squares,
    :func:`tsode.asymptotics.fit_power_law`)."""
    from ..asymptotics import fit_power_law

    return fit_power_law(tr.alpha, tr.eg, alpha_min=tr.alpha[-1] / 10)[0]


def end_exponent(tr, n: int = 20) -> float:
    """d ln ε_g / d ln α at the end of ``tr``: least-squares slope over the last n points."""
    from ..asymptotics import fit_power_law

    return fit_power_law(tr.alpha[-n:], tr.eg[-n:])[0]
