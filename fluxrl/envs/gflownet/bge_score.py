"""The BGe score: the marginal likelihood of linear-Gaussian data under a Normal-Wishart prior (Geiger &
Heckerman 1994; Kuipers, Moffa & Heckerman 2014), per variable subset and per node and parent set.

Plain numpy in float64, computed once on the host; the structure-learning environment reads the resulting
table of local scores.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import multigammaln

from fluxrl.core.config import ConfigError


class BGePrior(NamedTuple):
    """The Normal-Wishart prior of the BGe score: mean mu0 = 0, mean precision alpha_mu, Wishart degrees of
    freedom alpha_w (None: d + 2), and T = t I with t = alpha_mu (alpha_w - d - 1) / (alpha_mu + 1)."""

    alpha_mu: float = 1.0
    alpha_w: float | None = None


def bge_subset_log_marginals(data: np.ndarray, prior: BGePrior = BGePrior()) -> np.ndarray:
    """float64 [2**d]: log p(D^Y) for every variable subset Y (bit i set when i is in Y), under the BGe prior.

    With N samples, l = |Y|, R = T + S_N + N alpha_mu / (N + alpha_mu) (mu0 - mean)(mu0 - mean)^T:
    log p(D^Y) = -N l / 2 log pi + l / 2 log(alpha_mu / (N + alpha_mu)) + log Gamma_l((N + alpha_w - d + l) / 2)
                 - log Gamma_l((alpha_w - d + l) / 2) + (alpha_w - d + l) / 2 log det T_Y
                 - (N + alpha_w - d + l) / 2 log det R_Y   (Kuipers, Moffa & Heckerman 2014),
    and 0 for the empty set."""
    data = np.asarray(data, np.float64)
    n, d = data.shape
    alpha_mu = float(prior.alpha_mu)
    alpha_w = float(d + 2 if prior.alpha_w is None else prior.alpha_w)
    if alpha_w <= d - 1:
        raise ConfigError(f"alpha_w must be > d - 1 = {d - 1} for a proper Wishart prior, got {alpha_w}.")
    t = alpha_mu * (alpha_w - d - 1) / (alpha_mu + 1)
    if t <= 0:
        raise ConfigError(f"alpha_w must be > d + 1 = {d + 1} so T = t I is positive definite, got {alpha_w}.")
    mean = data.mean(axis=0)
    centred = data - mean
    r = t * np.eye(d) + centred.T @ centred + (n * alpha_mu / (n + alpha_mu)) * np.outer(mean, mean)
    masks = np.arange(2**d)
    members = ((masks[:, None] >> np.arange(d)) & 1).astype(bool)
    sizes = members.sum(axis=1)
    out = np.zeros(2**d)
    for size in range(1, d + 1):
        rows = np.flatnonzero(sizes == size)
        index = np.array([np.flatnonzero(members[row]) for row in rows])
        blocks = r[index[:, :, None], index[:, None, :]]
        sign, logdet_r = np.linalg.slogdet(blocks)
        assert (sign > 0).all()
        a_post, a_prior = (n + alpha_w - d + size) / 2, (alpha_w - d + size) / 2
        out[rows] = (-n * size / 2 * np.log(np.pi) + size / 2 * np.log(alpha_mu / (n + alpha_mu))
                     + multigammaln(a_post, size) - multigammaln(a_prior, size)
                     + a_prior * size * np.log(t) - a_post * logdet_r)
    return out


def bge_local_scores(data: np.ndarray, prior: BGePrior = BGePrior()) -> np.ndarray:
    """float64 [d, 2**d]: local[j, m] = log p(D^{m + j}) - log p(D^m), the BGe score of node j with parents m;
    -inf where bit j of m is set."""
    d = np.asarray(data).shape[1]
    marginals = bge_subset_log_marginals(data, prior)
    masks = np.arange(2**d)
    local = np.full((d, 2**d), -np.inf)
    for node in range(d):
        free = (masks >> node) & 1 == 0
        local[node, free] = marginals[masks[free] | (1 << node)] - marginals[masks[free]]
    return local
