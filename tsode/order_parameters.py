r"""Order parameters, training set-up, generalisation error and initial states.

Conventions (Goldt et al. 2019): inputs :math:`x\in\mathbb R^N` with i.i.d. N(0,1) entries;
teacher :math:`y = \sum_m v^*_m g(w^*_m\cdot x/\sqrt N) + \sigma\zeta`; student
:math:`\phi(x) = \sum_k v_k g(w_k\cdot x/\sqrt N)`. The order parameters are

.. math::

    Q = W W^\top/N \;(K\times K),\quad R = W W^{*\top}/N \;(K\times M),\quad
    T = W^* W^{*\top}/N \;(M\times M),

and the local fields :math:`(\lambda,\rho)` are jointly Gaussian with covariance
:math:`C = [[Q, R], [R^\top, T]]`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import check_int, check_memory, check_number, covariance, psd_violation
from ._common import PSD_RTOL
from .activations import Activation, activation, index_tuples

__all__ = [
    "OrderParameters",
    "Setup",
    "generalisation_error",
    "eg_from_covariance",
    "initial_state",
    "INITIAL_KINDS",
]


def _frozen(x, name, shape=None) -> np.ndarray:
    try:
        a = np.array(x, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of real numbers, got {x!r}") from None
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite entries (NaN or inf)")
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class OrderParameters:
    """Macroscopic state of a student-teacher pair (validated, immutable).

    Parameters
    ----------
    Q : (K, K) symmetric, student-student overlaps.
    R : (K, M) student-teacher overlaps.
    T : (M, M) symmetric, teacher-teacher overlaps.
    v : (K,) student second-layer weights.
    v_star : (M,) teacher second-layer weights.

    The joint covariance ``[[Q, R], [R.T, T]]`` must be positive semi-definite (it is a Gram
    matrix); a violation raises ``ValueError``.
    """

    Q: np.ndarray
    R: np.ndarray
    T: np.ndarray
    v: np.ndarray
    v_star: np.ndarray

    def __post_init__(self):
        Q = np.atleast_2d(np.asarray(self.Q, dtype=float))
        if Q.ndim != 2 or Q.shape[0] != Q.shape[1] or Q.shape[0] < 1:
            raise ValueError(f"Q must be a square (K, K) matrix with K >= 1, got shape {Q.shape}")
        K = Q.shape[0]
        T = np.atleast_2d(np.asarray(self.T, dtype=float))
        if T.ndim != 2 or T.shape[0] != T.shape[1] or T.shape[0] < 1:
            raise ValueError(f"T must be a square (M, M) matrix with M >= 1, got shape {T.shape}")
        M = T.shape[0]
        object.__setattr__(self, "Q", _frozen(Q, "Q"))
        object.__setattr__(self, "T", _frozen(T, "T"))
        object.__setattr__(self, "R", _frozen(np.reshape(self.R, np.shape(self.R)), "R", (K, M)))
        object.__setattr__(self, "v", _frozen(np.ravel(self.v), "v", (K,)))
        object.__setattr__(self, "v_star", _frozen(np.ravel(self.v_star), "v_star", (M,)))
        for name in ("Q", "T"):
            A = getattr(self, name)
            if np.abs(A - A.T).max() > 1e-10 * max(1.0, np.abs(A).max()):
                raise ValueError(f"{name} must be symmetric")
        bad = float(psd_violation(self.covariance))
        if bad > PSD_RTOL:
            raise ValueError(
                "overlaps are not positive semi-definite: the matrix [[Q, R], [R^T, T]], scaled "
                f"to unit diagonal, has smallest eigenvalue {-bad:.3g} < -{PSD_RTOL:g}; "
                "(Q, R, T) must be a Gram matrix"
            )

    @property
    def K(self) -> int:
        """Number of student hidden units."""
        return self.Q.shape[0]

    @property
    def M(self) -> int:
        """Number of teacher hidden units."""
        return self.T.shape[0]

    @property
    def covariance(self) -> np.ndarray:
        """(K+M, K+M) covariance of the local fields, [[Q, R], [R^T, T]]."""
        return covariance(self.Q, self.R, self.T)

    def replace(self, **changes) -> "OrderParameters":
        """A copy with some fields replaced (validated again)."""
        fields = dict(Q=self.Q, R=self.R, T=self.T, v=self.v, v_star=self.v_star)
        fields.update(changes)
        return OrderParameters(**fields)

    def __repr__(self):
        return f"OrderParameters(K={self.K}, M={self.M})"


@dataclass(frozen=True)
class Setup:
    """How the student is trained.

    Parameters
    ----------
    activation : "erf", "relu" or "linear" (same g for teacher and student).
    eta : first-layer learning rate, > 0 (update ``w_k -= eta/sqrt(N) v_k g'(lambda_k) Delta x``).
    eta_v : second-layer learning rate, >= 0; 0 freezes the second layer ("first layer only").
    sigma : standard deviation of the label noise, >= 0.
    weight_decay : kappa >= 0; adds -kappa R, -2 kappa Q, -kappa v to the drifts.
    """

    activation: str = "erf"
    eta: float = 0.5
    eta_v: float = 0.0
    sigma: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self):
        act = activation(self.activation)  # raises on unknown names; resolved once, here
        object.__setattr__(self, "activation", act.name)
        object.__setattr__(self, "_act", act)
        for name, strict in (
            ("eta", True), ("eta_v", False), ("sigma", False), ("weight_decay", False)
        ):
            value = check_number(getattr(self, name), name, strict=strict)
            object.__setattr__(self, name, value)

    @property
    def act(self) -> Activation:
        """The resolved :class:`~tsode.activations.Activation` (g, g', integrals, code)."""
        return self._act

    def __reduce__(self):  # rebuilt from the fields (the Activation holds compiled kernels)
        return (Setup, (self.activation, self.eta, self.eta_v, self.sigma, self.weight_decay))

    @property
    def train_second_layer(self) -> bool:
        return self.eta_v > 0.0


def eg_from_covariance(C, v, v_star, act) -> np.ndarray:
    r"""Generalisation error from field covariances, vectorised over leading axes.

    :math:`\epsilon_g = \tfrac12\sum_{a,b} w_a w_b I_2(a,b)` with
    :math:`w = (v_1..v_K, -v^*_1..-v^*_M)`.

    Parameters
    ----------
    C : (..., K+M, K+M) field covariances.
    v : (..., K) student second layer; v_star : (M,) or (..., M).
    act : Activation or name.
    """
    act = activation(act)
    C = np.asarray(C, dtype=float)
    v = np.asarray(v, dtype=float)
    v_star = np.broadcast_to(v_star, v.shape[:-1] + np.shape(v_star)[-1:])
    w = np.concatenate([v, -v_star], axis=-1)
    n = C.shape[-1]
    I2 = act.kernels["I2"](C, index_tuples(n, n)).reshape(C.shape[:-2] + (n, n))
    terms = w[..., :, None] * w[..., None, :] * I2
    eg = 0.5 * terms.sum(axis=(-1, -2))
    return _clip_round_off(eg, 0.5 * np.abs(terms).sum(axis=(-1, -2)))


#: Relative size (to the sum of the |terms|) of a negative eps_g that counts as round-off.
EG_ROUND_OFF = 1e-12


def _clip_round_off(eg, scale):
    """eps_g clipped at 0 where its negative part is round-off (>= -EG_ROUND_OFF * scale, the
    sum of the absolute values of its terms); a larger negative value raises ValueError (the
    covariance is not PSD)."""
    eg = np.asarray(eg, dtype=float)
    if np.any(eg < -EG_ROUND_OFF * scale):
        raise ValueError(
            f"the generalisation error came out negative ({eg.min():.3g}) beyond round-off: "
            "the field covariance is not positive semi-definite")
    return np.maximum(eg, 0.0)


def generalisation_error(state: OrderParameters, activation_name) -> float:
    r"""ε_g = ½ E[(φ_student − φ_teacher)²] against the noiseless teacher.

    Parameters
    ----------
    state : OrderParameters
    activation_name : "erf", "relu", "linear" or an Activation.
    """
    return float(eg_from_covariance(state.covariance, state.v, state.v_star, activation_name))


INITIAL_KINDS = ("random", "small", "informed", "denoise")


def _second_layer(spec, n, rng, name):
    if isinstance(spec, str):
        if spec == "ones":
            return np.ones(n)
        if spec == "normal":
            return rng.standard_normal(n)
        raise ValueError(f"{name} must be 'ones', 'normal' or an array of length {n}, got {spec!r}")
    a = np.ravel(np.asarray(spec, dtype=float))
    if a.shape != (n,):
        raise ValueError(f"{name} must have length {n}, got shape {a.shape}")
    return a


def initial_state(
    K: int,
    M: int,
    kind: str = "random",
    N: int = 10_000,
    seed: int = 0,
    *,
    init_std: float | None = None,
    teacher_std: float = 1.0,
    v="ones",
    v_star="ones",
    extra_std: float = 1e-3,
    orthogonal_teacher: bool = False,
) -> OrderParameters:
    """An initial macroscopic state.

    Parameters
    ----------
    K, M : student and teacher hidden units (K, M >= 1).
    kind :
        ``"random"`` — teacher entries N(0, teacher_std²) and student entries N(0, init_std²)
        (default init_std = 1, the paper's "large" initialisation) sampled in N dimensions; Q, R,
        T are the finite-N Gram matrices, so R = O(N^-1/2) and ODE and simulations started from
        this state start from the same point.
        ``"small"`` — the same with init_std = 1e-3 by default (the paper's choice for ReLU and
        linear networks).
        ``"informed"`` — N -> inf state with T = teacher_std² I: student unit k < M equals teacher
        unit k; extra units k >= M are orthogonal to all others with norm² extra_std².
        ``"denoise"`` — T = teacher_std² I, student unit k copies teacher unit k mod M and
        v_k = v*_m / (number of copies of m).
    N : input dimension used to sample "random"/"small" states.
    seed : seed of the numpy Generator.
    v, v_star : "ones", "normal" (N(0,1) entries) or arrays; for "random"/"small" also
        ``v="scaled"``: entries N(0, init_std²), the student's second layer at the scale of its
        first layer (the authors' start when both layers are trained: std 1e-3 for "small");
        the same draw as ``v="normal"`` multiplied by init_std.
    orthogonal_teacher : for "random"/"small", orthogonalise the teacher rows so that
        T = teacher_std² I exactly (the N -> inf value) while the student stays random.

    Returns
    -------
    OrderParameters
    """
    K, M = check_int(K, "K", 1), check_int(M, "M", 1)
    if kind not in INITIAL_KINDS:
        raise ValueError(f"unknown initial kind {kind!r}; allowed: {', '.join(INITIAL_KINDS)}")
    rng = np.random.default_rng(check_int(seed, "seed", 0, integral_float=True))
    teacher_std = check_number(teacher_std, "teacher_std", strict=True)
    vs = _second_layer(v_star, M, rng, "v_star")
    if kind in ("random", "small"):
        N = check_int(N, "N", 1, integral_float=True)
        std = (1.0 if kind == "random" else 1e-3) if init_std is None else init_std
        std = check_number(std, "init_std")
        return _sampled_state(K, M, N, std, teacher_std, rng, v, vs, orthogonal_teacher)
    extra_std = check_number(extra_std, "extra_std")
    if K < M:
        raise ValueError(f"kind={kind!r} needs K >= M, got K={K}, M={M}")
    T = teacher_std**2 * np.eye(M)
    if kind == "informed":
        Q = np.zeros((K, K))
        R = np.zeros((K, M))
        Q[:M, :M] = T
        R[:M, :] = T
        Q[np.arange(M, K), np.arange(M, K)] = extra_std**2
        return OrderParameters(Q=Q, R=R, T=T, v=_second_layer(v, K, rng, "v"), v_star=vs)
    # denoise
    teacher_of = np.arange(K) % M
    copies = np.bincount(teacher_of, minlength=M)
    R = T[teacher_of]
    Q = T[np.ix_(teacher_of, teacher_of)]
    vv = vs[teacher_of] / copies[teacher_of]
    return OrderParameters(Q=Q, R=R, T=T, v=vv, v_star=vs)


def _sampled_state(K, M, N, std, teacher_std, rng, v, vs, orthogonal_teacher):
    """Gram matrices of Gaussian student (K, N) and teacher (M, N) weights; refuses N that
    would not fit in memory (the weights and a QR workspace: ~2 (K + M) N floats)."""
    check_memory(2 * (K + M) * N * 8.0, f"initial_state with K={K}, M={M}, N={N}",
                 "use a smaller N (the overlaps of the N -> inf limit come from "
                 "kind='informed'/'denoise' or OrderParameters directly)")
    W_star = teacher_std * rng.standard_normal((M, N))
    if orthogonal_teacher:
        if M > N:
            raise ValueError(f"orthogonal_teacher needs M <= N, got M={M}, N={N}")
        W_star = teacher_std * np.sqrt(N) * np.linalg.qr(W_star.T)[0].T
    W = std * rng.standard_normal((K, N))
    if isinstance(v, str) and v == "scaled":  # the authors' start when both layers are trained
        vv = std * _second_layer("normal", K, rng, "v")
    else:
        vv = _second_layer(v, K, rng, "v")
    return OrderParameters(
        Q=W @ W.T / N, R=W @ W_star.T / N, T=W_star @ W_star.T / N, v=vv, v_star=vs
    )
