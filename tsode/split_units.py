r"""Merging parallel ("split") student units of positively homogeneous networks.

For an activation with g(c x) = c g(x) for c > 0 (ReLU, linear), student units k ∈ G that point
in the same direction, w_k = a_k ŵ with a_k > 0, and share the same second-layer weight v_G,
compute together

.. math::  \sum_{k\in G} v_G\, g(\lambda_k) = v_G\, g\Big(\sum_{k\in G}\lambda_k\Big),

i.e. exactly what one unit with weight w_G = Σ_{k∈G} w_k computes. How the norm is split among
the units of G (the *split ratio*) is invisible in the network function: a neutral direction of
the generalisation error, along which Newton's method for a fixed point has a singular Jacobian.
:func:`merge_units` removes it: in order parameters, with the 0/1 group matrix P (K', K),

.. math::  Q' = P Q P^\top,\qquad R' = P R,\qquad v'_G = v_G .

Dynamics (first layer trained, v frozen): parallel units have equal g'(λ_k) (g' depends on the
sign of λ only), so SGD gives every unit of G the same step; identical units (equal norms) stay
identical and their sum moves like one unit with learning rate |G| η. A state whose groups all
have the same size n therefore follows the merged system's ODE at learning rate n η
(:func:`merged_setup`), and its fixed points are those of the merged system. The difference
w_k − w_l of two units of G is conserved by these steps — an exactly neutral direction, so the
Jacobian of the unmerged drift has an eigenvalue 0 there (a finite-difference Jacobian at the
ReLU kink, where two units coincide, returns a small number of either sign instead).
"""

from __future__ import annotations

import numpy as np

from .order_parameters import OrderParameters, Setup

__all__ = ["parallel_groups", "merge_units", "merged_setup"]


def parallel_groups(state: OrderParameters, tol: float = 1e-6) -> list[list[int]]:
    """Groups of student units that are parallel (cosine Q_kl/√(Q_kk Q_ll) > 1 − tol) and have
    equal second-layer weights (|v_k − v_l| <= tol·max(1, |v_k|)), in order of first unit.

    ``tol`` in (0, 1). Units with Q_kk = 0 form groups of their own. Returns a list of lists of
    0-based unit indices covering 0..K-1."""
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    Q, v = np.asarray(state.Q, float), np.asarray(state.v, float)
    d = np.sqrt(np.clip(np.diag(Q), 0.0, None))
    groups: list[list[int]] = []
    for k in range(Q.shape[0]):
        for g in groups:
            l = g[0]
            if d[k] > 0 and d[l] > 0 and Q[k, l] / (d[k] * d[l]) > 1 - tol \
                    and abs(v[k] - v[l]) <= tol * max(1.0, abs(v[l])):
                g.append(k)
                break
        else:
            groups.append([k])
    return groups


def merge_units(state: OrderParameters, groups=None, tol: float = 1e-6) -> OrderParameters:
    r"""The state with every group of parallel units replaced by one unit w_G = Σ_{k∈G} w_k.

    ``groups``: list of lists of unit indices (0-based) partitioning 0..K-1; default
    :func:`parallel_groups` (``tol``). Given groups are checked to be parallel with equal v
    within ``tol`` (ValueError otherwise: merging non-parallel units changes the network).
    Returns OrderParameters with K' = len(groups) units: Q' = P Q Pᵀ (K', K'), R' = P R (K', M),
    v'_G = v_G, T and v* unchanged.
    """
    K = np.asarray(state.Q).shape[0]
    if groups is None:
        groups = parallel_groups(state, tol)
    groups = [list(map(int, g)) for g in groups]
    if sorted(k for g in groups for k in g) != list(range(K)):
        raise ValueError(f"groups must partition the units 0..{K - 1}, got {groups}")
    found = {tuple(g) for g in parallel_groups(state, tol)}
    for g in groups:
        if len(g) > 1 and not any(set(g) <= set(f) for f in found):
            raise ValueError(f"units {g} are not parallel with equal v within tol={tol}")
    P = np.zeros((len(groups), K))
    for i, g in enumerate(groups):
        P[i, g] = 1.0
    Q, R, v = np.asarray(state.Q), np.asarray(state.R), np.asarray(state.v)
    return OrderParameters(Q=P @ Q @ P.T, R=P @ R, T=np.asarray(state.T),
                           v=np.array([v[g[0]] for g in groups]), v_star=np.asarray(state.v_star))


def merged_setup(setup: Setup, groups) -> Setup:
    """The Setup whose ODE the merged state follows: learning rate n η when every group has the
    same size n (identical units; first layer only). ValueError for unequal group sizes (they
    would need a learning rate per unit) or a trained second layer (η_v > 0)."""
    sizes = {len(g) for g in groups}
    if len(sizes) != 1:
        raise ValueError(f"groups must all have the same size, got sizes {sorted(sizes)}")
    if setup.eta_v != 0:
        raise ValueError(f"setup.eta_v must be 0 (first layer only), got {setup.eta_v!r}")
    n = sizes.pop()
    return Setup(setup.activation, eta=n * setup.eta, eta_v=0.0, sigma=setup.sigma,
                 weight_decay=setup.weight_decay)
