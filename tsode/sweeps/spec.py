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

ENGINES = ("ode", "fixed_point", "full", "reduced")
SGD_ENGINES = ("full", "reduced")


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
        return list(self.iter_tasks())

    def iter_tasks(self):
        """The tasks of :meth:`tasks`, one at a time."""
        grid = self.grid()
        lists = [self.values[k] for k in self.swept]
        for index in itertools.product(*(range(len(x)) for x in lists)):
            s = {k: v for k, v in self.values.items() if k not in ("alphas",)}
            s.update({k: lists[i][j] for i, (k, j) in enumerate(zip(self.swept, index))})
            if s["K"] is None:
                s["K"] = s["M"] + s["L"]
            s["L"] = s["K"] - s["M"]
            alphas = tuple(float(a) for a in grid[grid <= self._last_alpha(s["alpha_max"])])
            yield Task(index=index, settings=s, alphas=alphas)

    def _last_alpha(self, alpha_max) -> float:
        """Largest output time of a task with this alpha_max (1e-12 relative slack; SGD: the
        grid of multiples of 1/min N)."""
        if self.engine in SGD_ENGINES:
            n = min(_listed(self.values["N"]))
            alpha_max = np.rint(alpha_max * n) / n
        return alpha_max * (1 + 1e-12)

    def combinations(self, names) -> list[dict]:
        """Distinct combinations of the settings ``names`` over the grid, with their number of
        tasks: [({name: value}, count)]. With K, also M and L (K = M + L when L is given)."""
        names = list(dict.fromkeys([*names, *(("K", "L", "M") if "K" in names else ())]))
        lists = [self.values[n] if n in self.swept else [self.values[n]] for n in names]
        n_tasks = int(np.prod([len(self.values[k]) for k in self.swept]))
        count = n_tasks // int(np.prod([len(x) for x in lists]))
        out = []
        for combo in itertools.product(*lists):
            c = dict(zip(names, combo))
            if c.get("K", 0) is None:
                c["K"] = c["M"] + c["L"]
            out.append((c, count))
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
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
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
    if values["alphas"] is not None and values["alphas"][-1] > max(_listed(values["alpha_max"])):
        raise SpecError(
            f"alphas: output time {values['alphas'][-1]:g} > alpha_max = "
            f"{max(_listed(values['alpha_max'])):g}; output times must lie within [0, "
            "alpha_max]")
    result = Spec(values=values, swept=swept)
    _check_tasks(result)
    return result


def _check_tasks(spec: Spec) -> None:
    """Checks that need the combinations: K vs M, engine vs runs, Setup, output times — on the
    distinct combinations of the settings each check reads (instant for any grid)."""
    from ..simulate import record_steps

    sgd = spec.engine in SGD_ENGINES
    for c, _ in spec.combinations(["init", "K"]):
        if c["init"] in ("informed", "denoise") and c["K"] < c["M"]:
            raise SpecError(f"K = {c['K']} < M = {c['M']}: init = {c['init']!r} needs K >= M")
    if not sgd and _listed(spec.values["runs"]) != [1]:
        raise SpecError(f"runs = {max(_listed(spec.values['runs']))}: engine {spec.engine!r} "
                        "is deterministic, use runs = 1")
    for c, _ in spec.combinations(["activation", "eta", "eta_v", "sigma", "weight_decay"]):
        try:
            Setup(c["activation"], c["eta"], c["eta_v"], c["sigma"], c["weight_decay"])
        except ValueError as e:
            raise SpecError(f"setup: {e}") from None
    if not sgd:
        return
    grid = spec.grid()
    for c, _ in spec.combinations(["weight_decay", "N", "alpha_max"]):
        if c["weight_decay"] >= c["N"]:
            raise SpecError(f"weight_decay = {c['weight_decay']} must be < N = {c['N']}")
        alphas = grid[grid <= spec._last_alpha(c["alpha_max"])]
        if alphas[-1] * c["N"] >= 2.0**62:
            raise SpecError(f"alpha_max x N = {alphas[-1] * c['N']:.3g} SGD steps (alpha_max = "
                            f"{c['alpha_max']}, N = {c['N']}): at most 2^62 steps can be counted")
        try:
            record_steps(c["N"], alphas[-1], alphas)
        except ValueError as e:
            raise SpecError(f"alphas at N = {c['N']}: {e}") from None


#: Settings that determine a task's cost (:func:`task_cost`).
COST_KEYS = ("K", "M", "N", "runs", "alpha_max", "init", "threads")


def task_cost(spec: Spec, s: dict) -> tuple:
    """(run-steps or None, estimated bytes) of one task with settings ``s`` (at least
    ``COST_KEYS``), from the settings alone: SGD run-steps = runs x round(α N) at the task's
    last output time; memory = the sampled initial state (random/small starts, N-dim weights)
    plus :func:`tsode._common.simulation_memory` (SGD, ``threads`` concurrent runs) or
    :func:`tsode._common.ode_memory` (ODE and fixed points)."""
    from .._common import ode_memory, sampled_state_memory, simulation_memory

    grid = spec.grid()
    alphas = grid[grid <= spec._last_alpha(s["alpha_max"])]
    K, M, N = s["K"], s["M"], s["N"]
    n_bytes = sampled_state_memory(K, M, N) if s["init"] in ("random", "small") else 0.0
    if spec.engine in SGD_ENGINES:
        steps = s["runs"] * int(np.rint(alphas[-1] * N))
        return steps, n_bytes + simulation_memory(K, M, N, s["runs"], alphas.size, spec.engine,
                                                  workers=s["threads"])
    return None, n_bytes + ode_memory(K, M, alphas.size)


@dataclass(frozen=True)
class Cost:
    """Estimated cost of a sweep, from its settings alone (no trajectory is computed).

    n_tasks; run_steps: total SGD run-steps (0 for ODE engines); task_bytes: memory of the
    largest task; result_bytes: the assembled dataset (NaN-padded to the largest K, M, runs);
    driver_bytes: the process that stores and assembles the results (about 3 x result_bytes:
    the loaded parts, the dataset and the netCDF write).
    """

    n_tasks: int
    run_steps: int
    task_bytes: float
    result_bytes: float
    driver_bytes: float

    def peak_bytes(self, workers: int) -> float:
        """Memory of a local run: ``workers`` concurrent tasks plus the driver."""
        return min(workers, self.n_tasks) * self.task_bytes + self.driver_bytes


def estimate(spec: Spec) -> Cost:
    """The :class:`Cost` of ``spec``: one :func:`task_cost` per distinct combination of
    ``COST_KEYS`` (instant for any grid)."""
    combos = spec.combinations(COST_KEYS)
    steps, task_bytes = 0, 0.0
    for c, count in combos:
        st, b = task_cost(spec, c)
        steps += (st or 0) * count
        task_bytes = max(task_bytes, b)
    n_tasks = sum(count for _, count in combos)
    K = max(c["K"] for c, _ in combos)
    M = max(c["M"] for c, _ in combos)
    runs = max(c["runs"] for c, _ in combos)
    G = spec.grid().size
    per_task = 8.0 * (runs * G * (1 + K * K + K * M + K) + M * M + M + G + 16)
    if spec.engine == "fixed_point":
        per_task += 8.0 * (K * K + K * M + K)
    result = n_tasks * per_task
    return Cost(n_tasks, steps, task_bytes, result, 3 * result)


def check_memory_ceiling(spec: Spec, workers: int, max_memory=None, driver_only=False) -> Cost:
    """The :func:`estimate` of ``spec``, after refusing (MemoryError) a sweep whose memory
    exceeds ``max_memory`` bytes (default: 80 % of the memory available now): ``workers``
    concurrent tasks plus the driver, or the driver alone (``driver_only``: tasks run on other
    machines, e.g. a Dask cluster)."""
    from .._common import available_memory, check_number, format_bytes

    cost = estimate(spec)
    if max_memory is None:
        ceiling, what = 0.8 * available_memory(), "80 % of the memory available now"
    else:
        ceiling = check_number(max_memory, "max_memory", strict=True)
        what = "max_memory"
    need = cost.driver_bytes if driver_only else cost.peak_bytes(workers)
    if need > ceiling:
        parts = (f"the results {format_bytes(cost.driver_bytes)}" if driver_only else
                 f"{min(workers, cost.n_tasks)} concurrent task(s) of up to "
                 f"{format_bytes(cost.task_bytes)} and the results "
                 f"{format_bytes(cost.driver_bytes)}")
        raise MemoryError(
            f"this sweep needs about {format_bytes(need)} ({parts}) but the ceiling is "
            f"{format_bytes(ceiling)} ({what}): use fewer workers, a smaller grid, K or N, "
            "or raise max_memory (--max-memory)")
    return cost
