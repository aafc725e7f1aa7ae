"""Negative-binomial (NB2) GLM with log link, batched over series in numpy: beta and the size theta
= 1/alpha by maximum likelihood (MASS ``glm.nb``'s alternation).

For every series at once: start from the Poisson fit; theta0 = n / sum (y/mu - 1)^2 (MASS
``theta.ml``); then alternate (a) IRLS for beta at fixed theta, weights w = mu / (1 + mu/theta),
working response eta - offset + (y - mu)/mu, until no coefficient moves by more than ``tol``
relative, and (b) Newton steps on the score of log theta at fixed mu; a series has converged when
a round moves neither a coefficient nor theta by more than ``tol`` relative. theta is capped at ``theta_max`` (alpha -> 0: no
over-dispersion, the Poisson limit); such series are flagged ``at_bound``.
"""

from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["irls_negbin_batched_ref", "negbin_loglik"]


def negbin_loglik(y: np.ndarray, mu: np.ndarray, theta: np.ndarray, use: np.ndarray) -> np.ndarray:
    """NB2 log-likelihood per series: sum over used weeks of log P(y | mu, size theta)."""
    th = theta[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = (
            special.gammaln(y + th)
            - special.gammaln(th)
            - special.gammaln(y + 1.0)
            + th * np.log(th / (th + mu))
            + np.where(y > 0, y * np.log(mu / (th + mu)), 0.0)
        )
    return np.sum(np.where(use, ll, 0.0), axis=1)


def _theta_newton(
    y: np.ndarray, mu: np.ndarray, theta: np.ndarray, use: np.ndarray, theta_max: float, tol: float
) -> np.ndarray:
    th = theta.copy()
    for _ in range(50):
        t = th[:, None]
        score = np.sum(
            np.where(
                use,
                special.digamma(y + t)
                - special.digamma(t)
                + np.log(t)
                + 1.0
                - np.log(t + mu)
                - (y + t) / (t + mu),
                0.0,
            ),
            axis=1,
        )
        info = np.sum(
            np.where(
                use,
                -special.polygamma(1, y + t)
                + special.polygamma(1, t)
                - 1.0 / t
                + 2.0 / (t + mu)
                - (y + t) / (t + mu) ** 2,
                0.0,
            ),
            axis=1,
        )
        # Newton on log theta (keeps theta positive): d/dlog(theta) = theta * score
        g = th * score
        h = th * th * info - g  # minus the second derivative in log theta
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(h > 0, g / h, np.sign(g))
        step = np.clip(step, -2.0, 2.0)
        new = np.minimum(th * np.exp(step), theta_max)
        done = np.abs(new - th) <= tol * th
        th = new
        if np.all(done):
            break
    return th


def irls_negbin_batched_ref(
    X: np.ndarray,
    Y: np.ndarray,
    OFF: np.ndarray,
    M: np.ndarray,
    beta0: np.ndarray,
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
    theta_max: float = 1e8,
) -> dict[str, np.ndarray]:
    """Fit every series; ``beta0`` [S, p] is the Poisson start.

    Returns
    -------
    dict
        beta [S, p], theta [S], cov [S, p, p] ((X'WX)^-1 at the final mu, theta), mu [S, T] (all
        weeks), loglik [S], n_iter [S], converged [S], at_bound [S].
    """
    n_series = Y.shape[0]
    y = np.where(M, Y, 0.0)
    beta = beta0.copy()
    eta = beta @ X.T + OFF
    mu = np.exp(eta)
    n = M.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = n / np.sum(np.where(M, (y / mu - 1.0) ** 2, 0.0), axis=1)
    theta = np.where(np.isfinite(theta) & (theta > 0), np.minimum(theta, theta_max), 1.0)
    # The score of alpha at alpha = 0 is sum((y - mu)^2 - y) / 2 at the Poisson fit: when it is
    # not positive the likelihood is maximised on the boundary (no over-dispersion).
    boundary = np.sum(np.where(M, (y - mu) ** 2 - y, 0.0), axis=1) <= 0
    theta = np.where(boundary, theta_max, theta)
    converged = np.zeros(n_series, dtype=bool)
    n_iter = np.zeros(n_series, dtype=np.int64)
    for it in range(1, max_iter + 1):
        active = ~converged
        n_iter[active] = it
        beta_round, theta_round = beta.copy(), theta.copy()
        # (a) IRLS for beta at fixed theta
        for _ in range(25):
            w = np.where(M, mu / (1.0 + mu / theta[:, None]), 0.0)
            z = eta - OFF + (y - mu) / mu
            A = np.einsum("st,tj,tk->sjk", w, X, X, optimize=True)
            b = np.einsum("st,tj->sj", w * z, X)
            new_beta = np.linalg.solve(A, b[:, :, None])[:, :, 0]
            change = np.max(np.abs(new_beta - beta) / (np.abs(new_beta) + 0.1), axis=1)
            beta = np.where(active[:, None], new_beta, beta)
            eta = beta @ X.T + OFF
            mu = np.exp(eta)
            if np.all(change[active] < tol):
                break
        # (b) theta at fixed mu
        theta = np.where(active & ~boundary, _theta_newton(y, mu, theta, M, theta_max, tol), theta)
        # alpha's move measured by what it changes: alpha mu^2 against mu, at the mean mu
        mean_mu = np.sum(np.where(M, mu, 0.0), axis=1) / np.maximum(n, 1)
        moved = np.maximum(
            np.max(np.abs(beta - beta_round) / (np.abs(beta) + 0.1), axis=1),
            np.abs(1.0 / theta - 1.0 / theta_round) * mean_mu,
        )
        converged |= moved < tol
        if np.all(converged):
            break
    ll_old = negbin_loglik(y, mu, theta, M)
    w = np.where(M, mu / (1.0 + mu / theta[:, None]), 0.0)
    A = np.einsum("st,tj,tk->sjk", w, X, X, optimize=True)
    cov = np.linalg.inv(A)
    return {
        "beta": beta,
        "theta": theta,
        "cov": 0.5 * (cov + np.transpose(cov, (0, 2, 1))),
        "mu": mu,
        "loglik": ll_old,
        "n_iter": n_iter,
        "converged": converged,
        "at_bound": theta >= theta_max,
    }
