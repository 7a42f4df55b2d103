"""Group per-sample scores into a tidy table: mean, std and a seeded percentile-bootstrap CI."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

_MAX_DRAWS = 1 << 22  # bootstrap indices drawn per chunk (n_boot x n), bounds memory


def _column(values, name: str, length: int | None) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=object if not hasattr(values, "dtype") else None)
    if array.ndim != 1:
        raise ValueError(f"column {name!r} must be one-dimensional, got shape {array.shape}")
    if length is not None and len(array) != length:
        raise ValueError(f"column {name!r} has {len(array)} rows, expected {length}")
    return array


def _group_key(value):
    """NaN (a missing value) groups with None."""
    return None if isinstance(value, float) and value != value else value


def bootstrap_mean_ci(values: np.ndarray, n_boot: int, ci: float, rng: np.random.Generator
                      ) -> tuple[float, float]:
    """Percentile bootstrap of the mean: resample ``values`` with replacement ``n_boot`` times and take
    the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles of the resampled means."""
    n = len(values)
    step = max(1, _MAX_DRAWS // n)
    means = np.concatenate([values[rng.integers(0, n, size=(min(step, n_boot - start), n))].mean(1)
                            for start in range(0, n_boot, step)])
    low, high = np.quantile(means, [(1 - ci) / 2, (1 + ci) / 2])
    return float(low), float(high)


def aggregate(columns: Mapping[str, Sequence], scores: Sequence[str], by: Sequence[str] = (), *,
              n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> list[dict]:
    """One row per group of ``by`` values (in order of first appearance; NaN and None are one group,
    labelled None) and score:
    ``{<by cols>..., score, n, n_invalid, mean, std, ci_low, ci_high}``.

    ``n`` counts the finite values and ``n_invalid`` the NaN/inf ones (invalid maps, empty masks), which
    are left out of every statistic. ``std`` is the sample standard deviation (ddof=1). The CI is a
    percentile bootstrap of the mean with ``n_boot`` resamples from ``np.random.default_rng([seed, g, s])``
    for group ``g`` and score ``s`` (their positions), so the same inputs give the same table. Statistics
    that need more values than there are (std or CI of fewer than 2, anything of 0) are NaN.
    """
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    missing = [c for c in (*scores, *by) if c not in columns]
    if missing:
        raise ValueError(f"columns missing: {missing}; have {sorted(columns)}")
    if not scores:
        raise ValueError("scores must name at least one column")
    length = len(_column(columns[scores[0]], scores[0], None))
    by_values = [[_group_key(v) for v in _column(columns[c], c, length).tolist()] for c in by]
    keys = list(zip(*by_values, strict=True)) if by else [()] * length
    groups: dict[tuple, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    data = {s: _column(columns[s], s, length).astype(np.float64) for s in scores}
    rows = []
    for g, (key, index) in enumerate(groups.items()):
        for s, score in enumerate(scores):
            values = data[score][index]
            finite = values[np.isfinite(values)]
            n = len(finite)
            row = dict(zip(by, key, strict=True))
            row.update(score=score, n=n, n_invalid=len(values) - n,
                       mean=float(finite.mean()) if n else float("nan"),
                       std=float(finite.std(ddof=1)) if n > 1 else float("nan"))
            low, high = (bootstrap_mean_ci(finite, n_boot, ci, np.random.default_rng([seed, g, s]))
                         if n > 1 else (float("nan"), float("nan")))
            row.update(ci_low=low, ci_high=high)
            rows.append(row)
    return rows
