"""Shapley value estimators over a cooperative game, numpy and the standard library only.

A ``Game`` has ``players`` (features, patches or tokens), a value function that scores many
coalitions at once (a boolean mask per row, True = the player is present; the caller batches
them into few ``session.run`` calls) and its two anchors: ``full``, the value of every player
(the served output), and ``empty``, the value of none (the base value).

- ``kernel_shap``: Kernel SHAP (Lundberg & Lee 2017) as a weighted least-squares fit under the
  efficiency constraint (attributions sum to ``full - empty``). Up to ``exact_max_players``
  every coalition is enumerated, which gives the exact Shapley values; above that, coalitions
  are drawn as the ``shap`` library draws them: whole coalition sizes enumerated while the
  budget covers them, the rest sampled by the Shapley kernel's weight, each with its complement.
- ``shapley_sampling``: permutation sampling with antithetic pairs (a permutation and its
  reverse); every permutation's marginal contributions telescope to ``full - empty``, so the
  estimate is additive by construction.
- ``leave_one_out``: ``full`` minus the value without one player: one evaluation per player,
  not additive (the residual says how far from it).

Randomness comes from ``random.Random(seed)`` (numpy.random is not shipped in lambda.zip), so
the same seed gives the same coalitions and the same attributions.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KERNEL_SHAP = "kernel-shap"
SHAPLEY_SAMPLING = "shapley-sampling"
LEAVE_ONE_OUT = "leave-one-out"

ValueFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Game:
    players: int
    value: ValueFunction  # masks [rows, players] (bool) -> values [rows] (float64)
    full: float
    empty: float


@dataclass(frozen=True)
class Attribution:
    values: np.ndarray  # float64 [players]
    exact: bool
    coalitions: int  # coalitions the value function scored (the anchors not counted)


def permutations_for(players: int, samples: int) -> int:
    """Permutations that fit ``samples`` coalitions (players - 1 each), an even number >= 2."""
    count = max(2, samples // max(1, players - 1))
    return count + (count % 2)


def planned_coalitions(method: str, players: int, samples: int, exact_max_players: int) -> int:
    """How many coalitions ``method`` scores at most: the cost, known before anything runs."""
    if players <= 1:
        return 0
    if method == KERNEL_SHAP:
        every = 2**players - 2
        return every if players <= exact_max_players else min(samples, every)
    if method == SHAPLEY_SAMPLING:
        return permutations_for(players, samples) * (players - 1)
    return players  # leave-one-out


def estimate(game: Game, method: str, *, samples: int, seed: int, exact_max_players: int) -> Attribution:
    """Attributions of ``game`` by ``method`` (one of KERNEL_SHAP, SHAPLEY_SAMPLING, LEAVE_ONE_OUT)."""
    if method == KERNEL_SHAP:
        return kernel_shap(game, samples=samples, seed=seed, exact_max_players=exact_max_players)
    if method == SHAPLEY_SAMPLING:
        return shapley_sampling(game, samples=samples, seed=seed)
    if method == LEAVE_ONE_OUT:
        return leave_one_out(game)
    raise ValueError(f"unknown explanation method {method!r}")


def kernel_shap(game: Game, *, samples: int, seed: int, exact_max_players: int) -> Attribution:
    players = game.players
    if players <= 1:
        return Attribution(np.full(players, game.full - game.empty, dtype=np.float64), True, 0)
    exact = players <= exact_max_players or samples >= 2**players - 2
    masks, weights = every_coalition(players) if exact else sampled_coalitions(players, samples, random.Random(seed))
    values = np.asarray(game.value(masks), dtype=np.float64)
    return Attribution(constrained_least_squares(masks, weights, values, game.empty, game.full), exact, len(masks))


def shapley_kernel(players: int, size: int) -> float:
    """The Shapley kernel's weight of one coalition of ``size`` players."""
    return (players - 1) / (math.comb(players, size) * size * (players - size))


def every_coalition(players: int) -> tuple[np.ndarray, np.ndarray]:
    """Every coalition but the empty and the full one (their values are the anchors)."""
    codes = np.arange(1, 2**players - 1, dtype=np.int64)
    masks = ((codes[:, None] >> np.arange(players)) & 1).astype(bool)
    kernel = np.array([0.0] + [shapley_kernel(players, size) for size in range(1, players)])
    return masks, kernel[masks.sum(axis=1)]


def sampled_coalitions(players: int, samples: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """About ``samples`` coalitions and their weights, drawn like shap's KernelExplainer: sizes
    s and players - s are paired; the smallest sizes are enumerated whole while the remaining
    budget covers them at their kernel weight; the rest is sampled from the kernel's remaining
    mass, each draw with its complement, repeated draws adding weight instead of rows."""
    sizes = math.ceil((players - 1) / 2)
    paired = (players - 1) // 2
    size_weight = np.array([(players - 1) / (size * (players - size)) for size in range(1, sizes + 1)])
    size_weight[:paired] *= 2
    size_weight /= size_weight.sum()
    rows: list[np.ndarray] = []
    weights: list[float] = []
    left = samples
    remaining = size_weight.copy()
    full_sizes = 0
    for size in range(1, sizes + 1):
        subsets = math.comb(players, size) * (2 if size <= paired else 1)
        if left * remaining[size - 1] / subsets < 1.0 - 1e-8:
            break
        full_sizes += 1
        left -= subsets
        if remaining[size - 1] < 1.0:
            remaining = remaining / (1.0 - remaining[size - 1])
        weight = size_weight[size - 1] / math.comb(players, size) / (2 if size <= paired else 1)
        for members in itertools.combinations(range(players), size):
            mask = np.zeros(players, dtype=bool)
            mask[list(members)] = True
            rows.append(mask)
            weights.append(weight)
            if size <= paired:
                rows.append(~mask)
                weights.append(weight)
    if full_sizes < sizes and left > 0:
        mass = size_weight[full_sizes:].copy()
        mass[: max(0, paired - full_sizes)] /= 2  # a draw of a paired size also adds its complement
        everyone = frozenset(range(players))
        drawn: dict[frozenset[int], float] = {}
        # Distinct coalitions are the cost; a repeated draw only adds weight (bounded draws).
        for size in rng.choices(range(full_sizes + 1, sizes + 1), weights=mass.tolist(), k=4 * left):
            if len(drawn) >= left:
                break
            members = frozenset(rng.sample(range(players), size))
            for member in (members, everyone - members) if size <= paired else (members,):
                drawn[member] = drawn.get(member, 0.0) + 1.0
        counts = np.array(list(drawn.values()))
        leftover = size_weight[full_sizes:].sum()
        for members in drawn:
            mask = np.zeros(players, dtype=bool)
            mask[list(members)] = True
            rows.append(mask)
        weights.extend((counts * leftover / counts.sum()).tolist())
    return np.array(rows, dtype=bool).reshape(-1, players), np.array(weights, dtype=np.float64)


def constrained_least_squares(
    masks: np.ndarray, weights: np.ndarray, values: np.ndarray, empty: float, full: float
) -> np.ndarray:
    """Kernel SHAP's weighted least squares, ``values - empty ~ masks @ phi``, with
    ``sum(phi) = full - empty`` enforced by eliminating the last player."""
    delta = full - empty
    z = masks.astype(np.float64)
    design = z[:, :-1] - z[:, -1:]
    target = values - empty - z[:, -1] * delta
    weighted = design * weights[:, None]
    # The normal equations are players x players (fast); lstsq when they are singular (a player
    # that no sampled coalition separates from the last one).
    try:
        head = np.linalg.solve(weighted.T @ design, weighted.T @ target)
    except np.linalg.LinAlgError:
        root = np.sqrt(weights)
        head, *_ = np.linalg.lstsq(design * root[:, None], target * root, rcond=None)
    return np.append(head, delta - head.sum())


def shapley_sampling(game: Game, *, samples: int, seed: int) -> Attribution:
    players = game.players
    if players <= 1:
        return Attribution(np.full(players, game.full - game.empty, dtype=np.float64), True, 0)
    rng = random.Random(seed)
    orders = []
    for _ in range(permutations_for(players, samples) // 2):
        order = list(range(players))
        rng.shuffle(order)
        orders += [order, order[::-1]]
    order_array = np.array(orders, dtype=np.int64)
    count = len(order_array)
    ranks = np.empty_like(order_array)
    ranks[np.arange(count)[:, None], order_array] = np.arange(players)
    # Prefix k of permutation p: the players ranked below k. Sizes 1 .. players - 1.
    prefixes = ranks[:, None, :] < np.arange(1, players)[None, :, None]
    # Each distinct coalition is scored once (np.unique would need numpy.ma, not in lambda.zip).
    rows: list[np.ndarray] = []
    index: dict[bytes, int] = {}
    inverse = np.empty(count * (players - 1), dtype=np.int64)
    for position, mask in enumerate(prefixes.reshape(-1, players)):
        inverse[position] = index.setdefault(mask.tobytes(), len(rows))
        if inverse[position] == len(rows):
            rows.append(mask)
    unique = np.array(rows)
    values = np.asarray(game.value(unique), dtype=np.float64)[inverse].reshape(count, players - 1)
    chain = np.concatenate([np.full((count, 1), game.empty), values, np.full((count, 1), game.full)], axis=1)
    marginal = np.diff(chain, axis=1)  # step j adds player order[p, j]
    total = np.zeros(players, dtype=np.float64)
    np.add.at(total, order_array, marginal)
    return Attribution(total / count, False, len(unique))


def leave_one_out(game: Game) -> Attribution:
    masks = ~np.eye(game.players, dtype=bool)
    values = np.asarray(game.value(masks), dtype=np.float64) if game.players else np.zeros(0)
    return Attribution(game.full - values, False, game.players)
