"""The result of an integration or a simulation: order parameters on a grid of times alpha."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .order_parameters import OrderParameters, Setup

__all__ = ["Trajectory"]


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
        """Save to a compressed ``.npz`` file."""
        s = self.setup
        np.savez_compressed(
            path,
            alpha=self.alpha, eg=self.eg, Q=self.Q, R=self.R, v=self.v,
            T_teacher=self.T_teacher, v_star=self.v_star,
            setup=np.array([s.activation, s.eta, s.eta_v, s.sigma, s.weight_decay], dtype=object),
            info_keys=np.array(list(self.info.keys()), dtype=object),
            info_values=np.array([repr(x) for x in self.info.values()], dtype=object),
        )

    @classmethod
    def from_npz(cls, path) -> "Trajectory":
        """Load a trajectory written by :meth:`to_npz`."""
        import ast

        with np.load(path, allow_pickle=True) as f:
            act, eta, eta_v, sigma, wd = f["setup"]
            info = {}
            for k, val in zip(f["info_keys"], f["info_values"]):
                try:
                    info[str(k)] = ast.literal_eval(str(val))
                except (ValueError, SyntaxError):
                    info[str(k)] = str(val)
            return cls(
                alpha=f["alpha"], eg=f["eg"], Q=f["Q"], R=f["R"], v=f["v"],
                T_teacher=f["T_teacher"], v_star=f["v_star"],
                setup=Setup(str(act), float(eta), float(eta_v), float(sigma), float(wd)),
                info=info,
            )

    def __repr__(self):
        runs = "" if self.n_runs is None else f", runs={self.n_runs}"
        return (
            f"Trajectory({self.setup.activation}, K={self.Q.shape[-1]}, M={self.v_star.size}, "
            f"alpha=[{self.alpha[0]:g}..{self.alpha[-1]:g}] ({self.alpha.size} points){runs})"
        )
