"""Sweep specs: parsing, validation, the task grid, per-task seeds and the output-time grid.

A spec is a TOML file (or the equivalent nested dict) with three sections::

    [setup]    activation, eta, eta_v, sigma, weight_decay
    [network]  M, K or L (K = M + L), init, init_std, v, v_star, v_scale, orthogonal_teacher
    [run]      engine, N, runs, alpha_max, seed, n_alphas, alpha_min, alphas, threads, rtol, atol

A list as the value of a *sweepable* setting (``SWEEPABLE``) sweeps it: the tasks are the
product of all lists, in the order the settings appear in the spec. Everything is validated
before any task runs, and errors name the setting.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._common import check_int, check_number, check_times
from ..activations import ACTIVATIONS
from ..order_parameters import INITIAL_KINDS, Setup

__all__ = ["Spec", "Task", "load_spec", "ENGINES", "SWEEPABLE"]

ENGINES = ("ode", "fixed_point", "full", "reduced", "sde")
SGD_ENGINES = ("full", "reduced", "sde")


def _number(lower=0.0, strict=False, integer=False, upper=None):
    """A spec-value check by the package's one validator (:func:`tsode._common.check_number` /
    :func:`~tsode._common.check_int`), its ValueError raised as a SpecError."""
    def check(name, x):
        try:
            if integer:
                return check_int(x, name, lower, upper=upper)
            return check_number(x, name, lower=lower, strict=strict, upper=upper)
        except ValueError as e:
            raise SpecError(str(e)) from None

    return check


def _choice(options):
    def check(name, x):
        if x not in options:
            raise SpecError(f"{name} must be one of {', '.join(map(repr, options))}, got {x!r}")
        return x

    return check


def _optional(check):
    return lambda name, x: None if x is None else check(name, x)


def _flag(name, x):
    if not isinstance(x, bool):
        raise SpecError(f"{name} must be true or false, got {x!r}")
    return x


class SpecError(ValueError):
    """A spec that cannot run: unknown or missing setting, empty grid, value out of range."""


_REQUIRED = object()

#: name -> (section, validator, default, sweepable)
SETTINGS = {
    "activation": ("setup", _choice(tuple(ACTIVATIONS)), "erf", True),
    "eta": ("setup", _number(strict=True), _REQUIRED, True),
    "eta_v": ("setup", _number(), 0.0, True),
    "sigma": ("setup", _number(), 0.0, True),
    "weight_decay": ("setup", _number(), 0.0, True),
    "M": ("network", _number(1, integer=True), _REQUIRED, True),
    "K": ("network", _number(1, integer=True), None, True),
    "L": ("network", _number(0, integer=True), None, True),
    "init": ("network", _choice(INITIAL_KINDS), "random", True),
    "init_std": ("network", _optional(_number()), None, True),
    "v": ("network", _choice(("ones", "normal")), "ones", False),
    "v_star": ("network", _choice(("ones", "normal")), "ones", False),
    "v_scale": ("network", _number(strict=True), 1.0, False),
    "orthogonal_teacher": ("network", _flag, False, False),
    "engine": ("run", _choice(ENGINES), "ode", False),
    "N": ("run", _number(1, integer=True), 1000, True),
    "runs": ("run", _number(1, integer=True), 1, True),
    "alpha_max": ("run", _number(strict=True), _REQUIRED, True),
    "seed": ("run", _number(0, integer=True), 0, True),
    "n_alphas": ("run", _number(1, integer=True), 100, False),
    "alpha_min": ("run", _optional(_number(strict=True)), None, False),
    "alphas": ("run", None, None, False),  # explicit output grid (a list, never swept)
    "threads": ("run", _number(1, integer=True), 1, False),
    "rtol": ("run", _number(strict=True, upper=0.1), 1e-8, False),
    "atol": ("run", _number(strict=True), 1e-12, False),
}
SWEEPABLE = tuple(k for k, s in SETTINGS.items() if s[3])
#: Settings that define a task's random streams (not runs, alpha_max, engine: a run's
#: trajectory is then the same when only those change, so a prefix can be recomputed cheaply).
SEED_KEYS = ("activation", "eta", "eta_v", "sigma", "weight_decay", "M", "K", "init",
             "init_std", "v", "v_star", "v_scale", "orthogonal_teacher", "N")


def canonical(obj) -> str:
    """Canonical JSON (sorted keys, exact float repr) used for hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def digest(obj, n: int = 16) -> str:
    return hashlib.sha256(canonical(obj).encode()).hexdigest()[:n]


@dataclass(frozen=True)
class Task:
    """One point of the grid: ``index`` (position per swept setting) and all its settings."""

    index: tuple
    settings: dict
    alphas: tuple  # output times of this task (a prefix of the sweep's grid)

    @property
    def key(self) -> str:
        """Name of the task's part file: a hash of its settings and output times."""
        return digest([self.settings, list(self.alphas)])

    def seeds(self) -> tuple[int, int]:
        """(init_seed, sim_seed) from ``SeedSequence(seed, spawn_key=hash of SEED_KEYS)``."""
        words = hashlib.sha256(
            canonical({k: self.settings[k] for k in SEED_KEYS}).encode()
        ).digest()
        key = tuple(int.from_bytes(words[i:i + 4], "little") for i in range(0, 16, 4))
        ss = np.random.SeedSequence(self.settings["seed"], spawn_key=key)
        a, b = ss.generate_state(2, np.uint64)
        return int(a >> np.uint64(1)), int(b >> np.uint64(1))

    def payload(self) -> dict:
        """Plain-data description sent to the worker (see :func:`tsode.sweeps.tasks.run_task`)."""
        init_seed, sim_seed = self.seeds()
        return dict(settings=self.settings, alphas=list(self.alphas), init_seed=init_seed,
                    sim_seed=sim_seed)


@dataclass(frozen=True)
class Spec:
    """A validated spec: ``values`` (every setting, lists for the swept ones), ``swept``."""

    values: dict
    swept: tuple

    @property
    def engine(self) -> str:
        return self.values["engine"]

    @property
    def hash(self) -> str:
        return digest(self.values)

    @property
    def coords(self) -> dict:
        return {k: list(self.values[k]) for k in self.swept}

    def to_json(self) -> str:
        return canonical(self.values)

    def grid(self) -> np.ndarray:
        """Nominal output times (G,) shared by all tasks (SGD: multiples of 1/min N)."""
        v = self.values
        amaxs = _listed(v["alpha_max"])
        if v["alphas"] is not None:
            grid = np.asarray(v["alphas"], dtype=float)
        else:
            top = max(amaxs)
            start = v["alpha_min"] or min(1e-2, top / 10)
            grid = np.concatenate([[0.0], np.geomspace(start, top, v["n_alphas"])])
        grid = np.union1d(grid, amaxs)
        if self.engine in SGD_ENGINES:
            n = min(_listed(v["N"]))
            grid = np.unique(np.rint(grid * n)) / n
        return grid

    def tasks(self) -> list[Task]:
        """All tasks, in row-major order of the swept settings."""
        grid = self.grid()
        out = []
        lists = [self.values[k] for k in self.swept]
        for index in itertools.product(*(range(len(x)) for x in lists)):
            s = {k: v for k, v in self.values.items() if k not in ("alphas",)}
            s.update({k: lists[i][j] for i, (k, j) in enumerate(zip(self.swept, index))})
            if s["K"] is None:
                s["K"] = s["M"] + s["L"]
            s["L"] = s["K"] - s["M"]
            amax = s["alpha_max"]
            if self.engine in SGD_ENGINES:
                amax = np.rint(amax * min(_listed(self.values["N"]))) / min(
                    _listed(self.values["N"]))
            alphas = tuple(float(a) for a in grid[grid <= amax * (1 + 1e-12)])
            out.append(Task(index=index, settings=s, alphas=alphas))
        return out


def _listed(x):
    return list(x) if isinstance(x, list) else [x]


def _read(spec) -> dict:
    if isinstance(spec, Spec):
        return spec.values
    if isinstance(spec, (str, Path)):
        is_text = isinstance(spec, str) and ("\n" in spec or "=" in spec)
        try:
            if is_text:
                return tomllib.loads(spec)
            with open(spec, "rb") as f:
                return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise SpecError(f"{'spec' if is_text else spec}: not valid TOML: {e}") from None
    if isinstance(spec, dict):
        return spec
    raise TypeError(f"spec must be a path, TOML text or a dict, got {type(spec).__name__}")


def _flatten(raw: dict) -> dict:
    """{section: {name: value}} -> {name: value}, rejecting unknown sections and settings."""
    if raw and all(k in SETTINGS for k in raw):  # already flat (a Spec's values)
        return dict(raw)
    flat = {}
    for section, body in raw.items():
        if section not in ("setup", "network", "run"):
            raise SpecError(f"unknown section [{section}]; allowed: [setup], [network], [run]")
        if not isinstance(body, dict):
            raise SpecError(f"[{section}] must be a table of settings")
        for name, value in body.items():
            if name not in SETTINGS:
                raise SpecError(
                    f"unknown setting {name!r} in [{section}]; allowed: "
                    f"{', '.join(k for k, s in SETTINGS.items() if s[0] == section)}")
            if SETTINGS[name][0] != section:
                raise SpecError(f"setting {name!r} belongs in [{SETTINGS[name][0]}], "
                                f"not [{section}]")
            flat[name] = value
    return flat


def _check_value(name, value):
    check, sweepable = SETTINGS[name][1], SETTINGS[name][3]
    if name == "alphas":
        return _check_alphas(value)
    if isinstance(value, list):
        if not sweepable:
            raise SpecError(f"{name} cannot be swept (give one value, not a list)")
        if not value:
            raise SpecError(f"{name}: empty grid (give at least one value)")
        vals = [check(name, x) for x in value]
        if len(set(map(canonical, vals))) != len(vals):
            raise SpecError(f"{name}: repeated values in {value!r}")
        return vals
    return check(name, value)


def _check_alphas(value):
    """The spec's output times: None, or a TOML list checked by :func:`tsode._common.check_times`."""
    if value is None:
        return None
    message = f"alphas must be a non-empty increasing list of times >= 0, got {value!r}"
    if not isinstance(value, list):
        raise SpecError(message)
    try:
        return [float(x) for x in check_times(value)]
    except ValueError:
        raise SpecError(message) from None


def load_spec(spec) -> Spec:
    """Parse and validate a spec (path to a TOML file, TOML text, a dict, or a Spec).

    Raises SpecError (a ValueError) naming the setting for: unknown sections or settings,
    missing required settings (eta, M, alpha_max), empty grids, values out of range, K < M
    with an informed/denoise start, both K and L given, runs > 1 for the deterministic engines,
    output times that collide at some N.
    """
    flat = _flatten(_read(spec))
    values = {}
    for name, (_, _, default, _) in SETTINGS.items():
        if name in flat:
            values[name] = _check_value(name, flat[name])
        elif default is _REQUIRED:
            raise SpecError(f"missing setting {name!r} (in [{SETTINGS[name][0]}])")
        else:
            values[name] = default
    if values["K"] is not None and values["L"] is not None:
        raise SpecError("give either K or L (K = M + L), not both")
    if values["K"] is None and values["L"] is None:
        values["K"] = values["M"]
    swept = tuple(k for k in flat if k in SWEEPABLE and isinstance(values[k], list))
    result = Spec(values=values, swept=swept)
    _check_tasks(result)
    return result


def _check_tasks(spec: Spec) -> None:
    """Checks that need the combinations: K vs M, engine vs runs, Setup, output times."""
    from ..simulate import record_steps

    sgd = spec.engine in SGD_ENGINES
    for task in spec.tasks():
        s = task.settings
        if s["init"] in ("informed", "denoise") and s["K"] < s["M"]:
            raise SpecError(f"K = {s['K']} < M = {s['M']}: init = {s['init']!r} needs K >= M")
        if not sgd and s["runs"] != 1:
            raise SpecError(f"runs = {s['runs']}: engine {spec.engine!r} is deterministic, "
                            "use runs = 1")
        try:
            Setup(s["activation"], s["eta"], s["eta_v"], s["sigma"], s["weight_decay"])
        except ValueError as e:
            raise SpecError(f"setup: {e}") from None
        if sgd:
            if s["weight_decay"] >= s["N"]:
                raise SpecError(f"weight_decay = {s['weight_decay']} must be < N = {s['N']}")
            try:
                record_steps(s["N"], task.alphas[-1], np.array(task.alphas))
            except ValueError as e:
                raise SpecError(f"alphas at N = {s['N']}: {e}") from None
