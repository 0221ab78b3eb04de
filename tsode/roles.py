r"""Unit classification: which student unit does what at a (fixed-point) state.

:func:`describe` reads the normalised overlaps of a state and names the role of every student
unit — specialised on a teacher unit, a copy, a split direction, anti-aligned, unspecialised,
dead or silent — in the vocabulary of chapter 4; :class:`Description` holds the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_number
from .order_parameters import OrderParameters
from .trajectory import Trajectory

__all__ = ["Description", "describe"]


@dataclass(frozen=True, eq=False)
class Description:
    r"""What a (fixed-point) state looks like, unit by unit.

    Attributes
    ----------
    cos : (K, M) normalised student-teacher overlaps :math:`R_{kn}/\sqrt{Q_{kk}T_{nn}}`.
    student_cos : (K, K) normalised student-student overlaps :math:`Q_{kl}/\sqrt{Q_{kk}Q_{ll}}`.
    norm2 : (K,) :math:`Q_{kk}`; norm_ratio : (K,) :math:`\sqrt{Q_{kk}/T_{nn}}` for the teacher
        unit n that k is closest to (``nan`` for dead units).
    v, v_star : second-layer weights.
    roles : per student unit, one of
        "specialised" (aligned, cos >= align_tol, the only live student on its teacher unit),
        "copy" (aligned with a teacher unit that has several aligned students, full norm),
        "split" (the same with a partial norm: the teacher direction is shared with partial
        norms, as positive homogeneity allows for ReLU),
        "anti-aligned" (cos <= -align_tol), "unspecialised" (no |cos| >= align_tol),
        "dead" (Q_kk < dead_tol · mean T_nn), "silent" (|v_k| < dead_tol · mean|v*|, alive).
    teacher_of : per student unit, the teacher unit it is closest to (largest |cos|) or None
        for dead units.
    aligned : teacher unit n -> students aligned with it (cos >= align_tol, alive, not silent).
    shared_v : teacher unit n -> Σ_k v_k over ``aligned[n]`` (copies share v*_n: ≈ v*_n).
    shared_v_norm : teacher unit n -> Σ_k v_k √(Q_kk/T_nn) over ``aligned[n]`` (≈ v*_n for
        split ReLU units, by positive homogeneity).
    anti_aligned_pairs : student pairs (k, l) with student_cos <= -align_tol (both alive).
    """

    cos: np.ndarray
    student_cos: np.ndarray
    norm2: np.ndarray
    norm_ratio: np.ndarray
    v: np.ndarray
    v_star: np.ndarray
    roles: tuple
    teacher_of: tuple
    aligned: dict
    shared_v: dict
    shared_v_norm: dict
    anti_aligned_pairs: tuple
    thresholds: dict

    def units(self, role: str) -> tuple:
        """Student units with the given role."""
        return tuple(k for k, r in enumerate(self.roles) if r == role)

    @property
    def dead(self) -> tuple:
        return self.units("dead")

    def _by_teacher(self, role: str) -> dict:
        """Teacher unit -> the student units of ``role`` aligned with it."""
        out = {}
        for k in self.units(role):
            out.setdefault(self.teacher_of[k], []).append(k)
        return {n: tuple(ks) for n, ks in out.items()}

    @property
    def copies(self) -> dict:
        """Teacher unit -> its student copies (only teacher units with >= 2 copies)."""
        return self._by_teacher("copy")

    @property
    def split(self) -> dict:
        """Teacher unit -> students sharing its direction with partial norms."""
        return self._by_teacher("split")

    def summary(self) -> str:
        counts = {r: len(self.units(r)) for r in dict.fromkeys(self.roles)}
        parts = [f"{n} {r}" for r, n in counts.items()]
        if self.anti_aligned_pairs:
            parts.append(f"{len(self.anti_aligned_pairs)} anti-aligned pair(s)")
        return ", ".join(parts)

    def __str__(self):
        lines = [f"K={len(self.roles)} students, M={len(self.v_star)} teachers: {self.summary()}"]
        for k, role in enumerate(self.roles):
            n = self.teacher_of[k]
            near = "" if n is None else f", teacher {n} (cos {self.cos[k, n]:+.4f})"
            lines.append(
                f"  student {k}: {role:<13s} Q_kk={self.norm2[k]:.4g}, v={self.v[k]:+.4g}{near}"
            )
        for n, ks in self.aligned.items():
            if len(ks) > 1:
                lines.append(
                    f"  teacher {n} (v*={self.v_star[n]:+.4g}) shared by students {list(ks)}: "
                    f"sum v = {self.shared_v[n]:+.4g}, sum v*norm ratio = "
                    f"{self.shared_v_norm[n]:+.4g}"
                )
        for k, l in self.anti_aligned_pairs:
            lines.append(f"  students {k} and {l} anti-aligned (cos {self.student_cos[k, l]:+.4f})")
        return "\n".join(lines)


def describe(
    state,
    *,
    align_tol: float = 0.99,
    dead_tol: float = 1e-2,
    norm_tol: float = 0.1,
) -> Description:
    r"""Classify the student units of ``state`` (an OrderParameters, FixedPoint or Trajectory).

    Parameters
    ----------
    align_tol : |cos| >= align_tol counts as aligned (0 < align_tol < 1).
    dead_tol : a unit is "dead" if Q_kk < dead_tol · mean_n T_nn and "silent" if
        |v_k| < dead_tol · mean|v*| (while alive).
    norm_tol : a unit aligned with a shared teacher unit is a "copy" if
        |√(Q_kk/T_nn) − 1| <= norm_tol, else "split".

    Returns
    -------
    Description (print it for a table).
    """
    if isinstance(getattr(state, "state", None), OrderParameters):  # a FixedPoint
        state = state.state
    if isinstance(state, Trajectory):
        state = state.final
    if not isinstance(state, OrderParameters):
        raise TypeError(
            "state must be an OrderParameters, FixedPoint or Trajectory, got "
            f"{type(state).__name__}"
        )
    align_tol = check_number(align_tol, "align_tol", strict=True, upper=1.0)
    dead_tol = check_number(dead_tol, "dead_tol")
    norm_tol = check_number(norm_tol, "norm_tol")
    Q, R, T = np.asarray(state.Q), np.asarray(state.R), np.asarray(state.T)
    v, vs = np.asarray(state.v), np.asarray(state.v_star)
    K, M = state.K, state.M
    qd, td = np.diag(Q), np.diag(T)
    sq = np.sqrt(np.maximum(qd, 1e-300))
    cos = R / np.outer(sq, np.sqrt(td))
    scos = Q / np.outer(sq, sq)
    dead = qd < dead_tol * td.mean()
    silent = ~dead & (np.abs(v) < dead_tol * np.abs(vs).mean())
    nearest = np.argmax(np.abs(cos), axis=1)
    c_near = cos[np.arange(K), nearest]
    ratio = np.where(dead, np.nan, np.sqrt(qd / td[nearest]))
    aligned = {n: tuple(int(k) for k in np.flatnonzero((nearest == n) & (c_near >= align_tol)
                                                       & ~dead & ~silent)) for n in range(M)}
    roles = []
    for k in range(K):
        n = nearest[k]
        if dead[k]:
            roles.append("dead")
        elif silent[k]:
            roles.append("silent")
        elif c_near[k] >= align_tol:
            if len(aligned[n]) == 1:
                roles.append("specialised")
            else:
                roles.append("copy" if abs(ratio[k] - 1) <= norm_tol else "split")
        elif c_near[k] <= -align_tol:
            roles.append("anti-aligned")
        else:
            roles.append("unspecialised")
    pairs = tuple((k, l) for k in range(K) for l in range(k + 1, K)
                  if not dead[k] and not dead[l] and scos[k, l] <= -align_tol)
    return Description(
        cos=cos, student_cos=scos, norm2=qd.copy(), norm_ratio=ratio, v=v.copy(),
        v_star=vs.copy(), roles=tuple(roles),
        teacher_of=tuple(None if dead[k] else int(nearest[k]) for k in range(K)),
        aligned={n: ks for n, ks in aligned.items() if ks},
        shared_v={n: float(v[list(ks)].sum()) for n, ks in aligned.items() if ks},
        shared_v_norm={n: float((v[list(ks)] * ratio[list(ks)]).sum())
                       for n, ks in aligned.items() if ks},
        anti_aligned_pairs=pairs,
        thresholds=dict(align_tol=align_tol, dead_tol=dead_tol, norm_tol=norm_tol),
    )
