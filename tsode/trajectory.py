"""The result of an integration or a simulation: order parameters on a grid of times alpha."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .order_parameters import OrderParameters, Setup

__all__ = ["Trajectory"]

#: Version of the .npz layout written by :meth:`Trajectory.to_npz`.
FORMAT = "tsode.Trajectory/2"
_ARRAYS = ("alpha", "eg", "Q", "R", "v", "T_teacher", "v_star")


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Order parameters of one or several runs on a common grid of times.

    Arrays are time-major; a leading run axis is present when the trajectory holds several
    independent runs (simulations with ``n_runs > 1``).

    Attributes
    ----------
    alpha : (T,) times alpha = steps / N.
    eg : (T,) or (runs, T) generalisation error.
    Q : (T, K, K) or (runs, T, K, K).
    R : (T, K, M) or (runs, T, K, M).
    v : (T, K) or (runs, T, K).
    T_teacher : (M, M) teacher overlaps (constant).
    v_star : (M,) teacher second layer (constant).
    setup : the Setup used.
    info : dict of engine details (solver statistics, N, seed, ...), saved with ``to_npz``.
    """

    alpha: np.ndarray
    eg: np.ndarray
    Q: np.ndarray
    R: np.ndarray
    v: np.ndarray
    T_teacher: np.ndarray
    v_star: np.ndarray
    setup: Setup
    info: dict = field(default_factory=dict)

    @property
    def n_runs(self) -> int | None:
        """Number of runs, or None for a single trajectory without run axis."""
        return self.eg.shape[0] if self.eg.ndim == 2 else None

    @property
    def T(self) -> np.ndarray:
        """Teacher-teacher overlaps (M, M)."""
        return self.T_teacher

    def state(self, t: int = -1, run: int | None = None) -> OrderParameters:
        """OrderParameters at time index ``t`` (of run ``run`` for multi-run trajectories)."""
        if self.n_runs is None:
            if run not in (None, 0):
                raise ValueError("this trajectory has no run axis")
            Q, R, v = self.Q[t], self.R[t], self.v[t]
        else:
            if run is None:
                raise ValueError(
                    f"this trajectory holds {self.n_runs} runs: pass run=i to pick one"
                )
            Q, R, v = self.Q[run, t], self.R[run, t], self.v[run, t]
        return OrderParameters(Q=Q, R=R, T=self.T_teacher, v=v, v_star=self.v_star)

    @property
    def final(self) -> OrderParameters:
        """The state at the last time (single-run trajectories; else use ``state(-1, run=i)``)."""
        return self.state(-1)

    def to_npz(self, path) -> None:
        """Save to a compressed ``.npz`` file (``.npz`` is appended to a path without it).

        No pickles: the arrays are float arrays and the metadata (format, setup, info) one JSON
        string; arrays in ``info`` are stored as arrays of their own. Numbers (nan and inf
        included) and arrays round-trip exactly. Raises TypeError for an info value that is not
        a number, string, bool, None, list, dict or numpy array.
        """
        arrays = {name: np.asarray(getattr(self, name), dtype=float) for name in _ARRAYS}
        info = {}
        for key, value in self.info.items():
            if isinstance(value, np.ndarray):
                arrays[f"info/{key}"] = _plain_array(value, key)
                info[key] = {"__array__": f"info/{key}"}
            else:
                info[key] = _plain(value, key)
        s = self.setup
        meta = dict(format=FORMAT, info=info, setup=dict(
            activation=s.activation, eta=s.eta, eta_v=s.eta_v, sigma=s.sigma,
            weight_decay=s.weight_decay))
        arrays["meta"] = np.array(json.dumps(meta))  # a unicode string array, not an object
        np.savez_compressed(_npz_path(path), **arrays)

    @classmethod
    def from_npz(cls, path) -> "Trajectory":
        """Load a trajectory written by :meth:`to_npz` (``.npz`` appended as by ``to_npz``).

        Never unpickles: a file holding Python objects is refused with a ValueError, as is a
        file whose arrays or metadata are missing or inconsistent.
        """
        path = _npz_path(path)
        _check_npz_magic(path)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {name: f[name] for name in f.files}
        except (OSError, EOFError, zipfile.BadZipFile) as err:
            raise ValueError(f"{path!s} is not a readable .npz file: {err}") from None
        except ValueError as err:
            if "allow_pickle" in str(err) or "Object arrays" in str(err):
                raise ValueError(
                    f"refusing to load {path!s}: it contains pickled Python objects, which can "
                    "run arbitrary code when loaded; tsode files contain none (re-create the "
                    "file with Trajectory.to_npz)"
                ) from None
            raise ValueError(f"{path!s} is not a readable .npz file: {err}") from None
        return _from_arrays(cls, arrays, path)

    def __repr__(self):
        runs = "" if self.n_runs is None else f", runs={self.n_runs}"
        return (
            f"Trajectory({self.setup.activation}, K={self.Q.shape[-1]}, M={self.v_star.size}, "
            f"alpha=[{self.alpha[0]:g}..{self.alpha[-1]:g}] ({self.alpha.size} points){runs})"
        )


def _check_npz_magic(path) -> None:
    """ValueError naming the file when it is neither a zip (.npz) nor a pickle: numpy would
    call any such file "pickled data" (a text file, an HDF5 file, ...)."""
    if not isinstance(path, (str, os.PathLike)):
        return
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise ValueError(f"cannot read {path!s}: {err.strerror or err}") from None
    if head[:2] != b"PK" and head[:1] != b"\x80":  # zip archive; pickle protocol >= 2
        raise ValueError(f"{path!s} is not a .npz file (it starts with {head!r}, not a zip "
                         "archive): write trajectories with Trajectory.to_npz")


def _npz_path(path):
    """``path`` with ``.npz`` appended when missing (file objects pass through)."""
    if isinstance(path, (str, os.PathLike)):
        path = os.fspath(path)
        return path if path.endswith(".npz") else path + ".npz"
    return path


def _plain(value, key):
    """A JSON-serialisable copy of an info value (numpy scalars become Python numbers)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(x, key) for x in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(x, key) for k, x in value.items()}
    raise TypeError(f"info[{key!r}] = {value!r} cannot be saved: info values must be numbers, "
                    "strings, bools, None, lists, dicts or numpy arrays")


def _plain_array(value, key):
    if value.dtype.kind not in "biuf":
        raise TypeError(f"info[{key!r}] is an array of dtype {value.dtype}: only numeric arrays "
                        "can be saved")
    return value


def _from_arrays(cls, arrays, path):
    """Check and assemble the arrays of a file written by ``to_npz``."""
    missing = [name for name in _ARRAYS + ("meta",) if name not in arrays]
    if missing:
        raise ValueError(f"{path!s} is not a tsode trajectory file: arrays {missing} are missing")
    try:
        meta = json.loads(str(arrays["meta"][()]))
        if meta["format"] != FORMAT:
            raise ValueError(f"unknown format {meta['format']!r}")
        setup = Setup(**meta["setup"])
        info = {key: (arrays[value["__array__"]] if isinstance(value, dict) and
                      set(value) == {"__array__"} else value)
                for key, value in meta["info"].items()}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path!s} has invalid metadata ({err})") from None
    _check_shapes(arrays, path)
    return cls(**{name: arrays[name] for name in _ARRAYS}, setup=setup, info=info)


def _check_shapes(a, path):
    """ValueError unless the arrays have the shapes of one trajectory (with or without runs)."""
    M = a["v_star"].shape[0] if a["v_star"].ndim == 1 else -1
    T = a["alpha"].shape[0] if a["alpha"].ndim == 1 else -1
    lead = a["eg"].shape[:-1]
    K = a["Q"].shape[-1] if a["Q"].ndim >= 2 else -1
    expected = dict(eg=lead + (T,), Q=lead + (T, K, K), R=lead + (T, K, M), v=lead + (T, K),
                    T_teacher=(M, M))
    bad = [f"{name} {a[name].shape} (expected {shape})" for name, shape in expected.items()
           if a[name].shape != shape]
    if min(M, T, K) < 1 or len(lead) > 1 or bad:
        raise ValueError(f"{path!s} holds inconsistent arrays: {', '.join(bad) or 'empty'}")
