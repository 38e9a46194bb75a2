"""How far a gate's verdict reaches beyond its sample: one-sided lower confidence bounds.

A gate measured on a few hundred held-out samples says what those samples did; a client sends
others. The bounds here say what the gate's numbers are worth for samples like them:

- ``bootstrap_quantile_lower_bound``: for per-sample scores (cosine similarity), a percentile
  bootstrap lower bound on a *low quantile* (by default the 1st percentile), fixed seed.
  Not on the minimum: the minimum of a sample is a tail statistic the bootstrap cannot see past.
  A resample's minimum is never below the sample's own minimum, and equals it with probability
  1 - (1 - 1/n)^n (~63 %), so a bootstrap "lower bound on the minimum" is the observed minimum
  itself: no margin at all. A low quantile is estimated from several samples near the bottom
  and its bootstrap distribution spreads below the observed value, which is the margin.
- ``binomial_lower_bound`` / ``binomial_upper_bound``: exact (Clopper-Pearson) bounds on a
  proportion (accuracy, agreement, the share of texts below a threshold). The bootstrap of a
  proportion is degenerate at 0 % and 100 % (every resample of 360/360 agreements is 100 %);
  the exact binomial bound is not (360/360 gives >= 99.2 % at 95 %).

Everything is deterministic: same scores, same bounds, on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 1_000
BOOTSTRAP_SEED = 0
# Rows of resample indices drawn at once: bounded memory whatever the held-out set's size.
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class BoundSettings:
    """What every bound in a gate result was computed with (recorded in the manifest)."""

    confidence: float = CONFIDENCE
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = BOOTSTRAP_SEED

    def describe(self) -> dict[str, object]:
        return {
            "confidence": self.confidence,
            "bootstrap_resamples": self.resamples,
            "bootstrap_seed": self.seed,
            "quantile_method": "percentile bootstrap of the sample quantile (numpy 'linear')",
            "proportion_method": "exact binomial (Clopper-Pearson), one-sided",
        }


def bootstrap_quantile_lower_bound(
    values: np.ndarray, quantile: float, settings: BoundSettings = BoundSettings()
) -> float:
    """One-sided ``settings.confidence`` lower bound on the ``quantile`` of the population the
    values were drawn from: the (1 - confidence) percentile of the quantile over
    ``settings.resamples`` bootstrap resamples drawn with ``settings.seed``."""
    scores = np.asarray(values, dtype=np.float64).ravel()
    if scores.size == 0:
        raise ValueError("a bound needs at least one value")
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be strictly between 0 and 1, got {quantile}")
    rng = np.random.default_rng(settings.seed)
    rows = max(1, _CHUNK_ELEMENTS // scores.size)
    statistics: list[np.ndarray] = []
    for start in range(0, settings.resamples, rows):
        count = min(rows, settings.resamples - start)
        resampled = scores[rng.integers(0, scores.size, size=(count, scores.size))]
        statistics.append(np.quantile(resampled, quantile, axis=1))
    return float(np.quantile(np.concatenate(statistics), 1.0 - settings.confidence))


def binomial_lower_bound(successes: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """Exact one-sided lower confidence bound on a proportion (Clopper-Pearson)."""
    from scipy.stats import beta

    _check_counts(successes, trials)
    if successes == 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, successes, trials - successes + 1))


def binomial_upper_bound(successes: int, trials: int, confidence: float = CONFIDENCE) -> float:
    """Exact one-sided upper confidence bound on a proportion (Clopper-Pearson): with 0 of n,
    about 3/n at 95 % (the rule of three)."""
    _check_counts(successes, trials)
    return 1.0 - binomial_lower_bound(trials - successes, trials, confidence)


def _check_counts(successes: int, trials: int) -> None:
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes} of {trials}")
