"""The games the estimators play: which parts of an input are the players, and how a coalition
becomes model inputs, batched into few ``session.run`` calls.

- Tensor inputs (tabular rows, images): a player is a feature, or a patch of pixels for image
  inputs. A coalition keeps its players' values from the explained row and takes every other
  feature from each background row in turn (interventional Kernel SHAP); its value is the mean
  explained output over the background. Features equal to every background row cannot change
  any value: they are not players and get exactly 0.
- Text (embedding models): a player is a token (special tokens such as [CLS] and [SEP] always
  stay). A coalition keeps its tokens and removes the others from attention (attention_mask 0,
  which also drops them from the mean pooling), so every perturbed text has the same length and
  no padding; its value is the cosine similarity of the text's vector to the target's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slimserve.handler.explain.shapley import Game

# Elements (rows x features, or rows x tokens) per session.run: large enough that the per-call
# overhead vanishes, small enough to keep memory flat (4 MB of float32).
MAX_ELEMENTS_PER_RUN = 1 << 20

RowScorer = Callable[[np.ndarray], np.ndarray]  # rows [n, *row_shape] -> explained value [n]
FeedScorer = Callable[[dict[str, np.ndarray]], np.ndarray]  # token feeds [n, L] -> vectors [n, dim]


def rows_per_run(row_elements: int) -> int:
    return max(1, MAX_ELEMENTS_PER_RUN // max(1, row_elements))


def patch_groups(features: int, image_shape: list[int] | None, patch: list[int] | None) -> np.ndarray:
    """Group id per feature: one group per feature, or per ``patch`` of the image the row
    reshapes to (leading axes, e.g. channels, share their pixel's patch)."""
    if image_shape is None or patch is None:
        return np.arange(features)
    height, width = image_shape[-2:]
    patch_h, patch_w = patch
    across = math.ceil(width / patch_w)
    grid = (np.arange(height)[:, None] // patch_h) * across + np.arange(width)[None, :] // patch_w
    return np.broadcast_to(grid, tuple(image_shape)).reshape(features)


@dataclass(frozen=True)
class TensorGame:
    game: Game
    player_of_feature: np.ndarray  # int [features], -1 for features that are not players
    features_per_player: np.ndarray  # int [players]
    background_rows: int

    def per_feature(self, attributions: np.ndarray) -> np.ndarray:
        """Players' attributions spread evenly over their features (sums are kept)."""
        shares = attributions / np.maximum(self.features_per_player, 1)
        return np.where(self.player_of_feature >= 0, shares[np.maximum(self.player_of_feature, 0)], 0.0)


def active_groups(row: np.ndarray, background: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """The groups (sorted) with a feature that differs from some background row: the players.
    (np.unique is avoided: it needs numpy.ma, which lambda.zip does not ship.)"""
    differs = (background.reshape(len(background), -1) != row.reshape(-1)).any(axis=0)
    return np.flatnonzero(np.bincount(groups[differs], minlength=int(groups.max()) + 1))


def tensor_game(row: np.ndarray, background: np.ndarray, groups: np.ndarray, score: RowScorer, full: float) -> TensorGame:
    """``row`` [*row_shape] explained against ``background`` [k, *row_shape]."""
    features = row.size
    flat_row = row.reshape(features)
    flat_background = background.reshape(len(background), features).astype(row.dtype, copy=False)
    active = active_groups(flat_row, flat_background, groups)
    player_of_group = np.full(int(groups.max()) + 1, -1, dtype=np.int64)
    player_of_group[active] = np.arange(len(active))
    player_of_feature = player_of_group[groups]
    per_run = rows_per_run(features)
    k = len(flat_background)

    def value(masks: np.ndarray) -> np.ndarray:
        # A feature outside every player equals the background: either source gives the same row.
        keep = np.where(player_of_feature >= 0, masks[:, np.maximum(player_of_feature, 0)], True)
        coalitions_per_run = max(1, per_run // k)
        values = []
        for start in range(0, len(keep), coalitions_per_run):
            chunk = keep[start : start + coalitions_per_run]
            rows = np.where(chunk[:, None, :], flat_row, flat_background[None, :, :])
            scores = score(rows.reshape((-1, *row.shape)))
            values.append(scores.reshape(len(chunk), k).mean(axis=1))
        return np.concatenate(values) if values else np.zeros(0)

    empty = float(value(np.zeros((1, len(active)), dtype=bool))[0])
    counts = np.bincount(player_of_feature[player_of_feature >= 0], minlength=len(active))
    return TensorGame(Game(len(active), value, full, empty), player_of_feature, counts, k)


def cosine(vectors: np.ndarray, target: np.ndarray) -> np.ndarray:
    vectors = vectors.astype(np.float64)
    target = target.astype(np.float64)
    norms = np.linalg.norm(vectors, axis=1) * np.linalg.norm(target)
    return vectors @ target / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class TokenGame:
    game: Game
    positions: np.ndarray  # token positions of the players in the encoded text
    length: int  # tokens per perturbed text


def token_game(feeds: dict[str, np.ndarray], special: np.ndarray, embed: FeedScorer, target: np.ndarray, full: float) -> TokenGame:
    """``feeds``: the text's own model inputs [1, L]; ``special`` [L]: tokens that always stay."""
    positions = np.flatnonzero(~special)
    length = feeds["input_ids"].shape[1]
    per_run = rows_per_run(length)

    def value(masks: np.ndarray) -> np.ndarray:
        values = []
        for start in range(0, len(masks), per_run):
            chunk = masks[start : start + per_run]
            batch = {name: np.repeat(array, len(chunk), axis=0) for name, array in feeds.items()}
            attention = batch["attention_mask"]
            attention[:, positions] = chunk.astype(attention.dtype)
            values.append(cosine(embed(batch), target))
        return np.concatenate(values) if values else np.zeros(0)

    empty = float(value(np.zeros((1, len(positions)), dtype=bool))[0])
    return TokenGame(Game(len(positions), value, full, empty), positions, length)
