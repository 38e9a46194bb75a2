"""all-MiniLM-L6-v2 as one plain PyTorch module: BERT encoder -> mean pooling -> L2 norm.

The sentence-transformers pipeline (Transformer, Pooling(mean), Normalize) written out in
~100 lines of torch, so the exported ONNX graph takes token ids and returns the finished,
unit-length sentence vector: the handler only tokenizes. The parameter names are exactly
those of the package's ``model.safetensors`` (a Hugging Face ``BertModel`` state dict), so the
weights load with ``strict=True``; nothing here imports transformers or touches the network.

    forward(input_ids, attention_mask, token_type_ids) -> embedding [batch, 384]
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# all-MiniLM-L6-v2's config.json (a 6-layer, 384-wide uncased BERT).
CONFIG = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
}


class Embeddings(nn.Module):
    def __init__(self, vocab_size: int, hidden: int, positions: int, types: int, eps: float) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.position_embeddings = nn.Embedding(positions, hidden)
        self.token_type_embeddings = nn.Embedding(types, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)
        # Stored in the weights file (persistent), as in the original BertModel.
        self.register_buffer("position_ids", torch.arange(positions).unsqueeze(0))

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        positions = self.position_ids[:, : input_ids.size(1)]
        summed = (
            self.word_embeddings(input_ids)
            + self.position_embeddings(positions)
            + self.token_type_embeddings(token_type_ids)
        )
        return self.LayerNorm(summed)


class SelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.head_size = hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.head_size).transpose(1, 2)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        query, key, value = self._split(self.query(hidden)), self._split(self.key(hidden)), self._split(self.value(hidden))
        scores = query @ key.transpose(-1, -2) / math.sqrt(self.head_size) + additive_mask
        context = torch.softmax(scores, dim=-1) @ value
        batch, _, length, _ = context.shape
        return context.transpose(1, 2).reshape(batch, length, self.heads * self.head_size)


class DenseResidual(nn.Module):
    """BERT's ``*.output``: dense, residual add, LayerNorm (dropout is a no-op in eval)."""

    def __init__(self, inner: int, hidden: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(inner, hidden)
        self.LayerNorm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class Attention(nn.Module):
    def __init__(self, hidden: int, heads: int, eps: float) -> None:
        super().__init__()
        self.self = SelfAttention(hidden, heads)
        self.output = DenseResidual(hidden, hidden, eps)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        return self.output(self.self(hidden, additive_mask), hidden)


class Intermediate(nn.Module):
    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, inner)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # exact (erf) GELU, BERT's "gelu"


class Layer(nn.Module):
    def __init__(self, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.attention = Attention(hidden, heads, eps)
        self.intermediate = Intermediate(hidden, inner)
        self.output = DenseResidual(inner, hidden, eps)

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        attended = self.attention(hidden, additive_mask)
        return self.output(self.intermediate(attended), attended)


class Encoder(nn.Module):
    def __init__(self, layers: int, hidden: int, heads: int, inner: int, eps: float) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(hidden, heads, inner, eps) for _ in range(layers))

    def forward(self, hidden: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layer:
            hidden = layer(hidden, additive_mask)
        return hidden


class Pooler(nn.Module):
    """BertModel's CLS pooler. Its weights are in the file, sentence-transformers never uses
    it (mean pooling instead), so the exported graph does not contain it."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)


class SentenceEmbedder(nn.Module):
    def __init__(self, config: dict[str, int | float]) -> None:
        super().__init__()
        hidden = int(config["hidden_size"])
        eps = float(config["layer_norm_eps"])
        self.embeddings = Embeddings(
            int(config["vocab_size"]), hidden, int(config["max_position_embeddings"]), int(config["type_vocab_size"]), eps
        )
        self.encoder = Encoder(
            int(config["num_hidden_layers"]), hidden, int(config["num_attention_heads"]), int(config["intermediate_size"]), eps
        )
        self.pooler = Pooler(hidden)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.embeddings(input_ids, token_type_ids)
        mask = attention_mask.to(hidden.dtype)
        # Padding positions get the most negative float before softmax (as BertModel does).
        additive = (1.0 - mask[:, None, None, :]) * torch.finfo(hidden.dtype).min
        tokens = self.encoder(hidden, additive)
        # Mean over real tokens only, then unit length: sentence-transformers' Pooling + Normalize.
        summed = (tokens * mask.unsqueeze(-1)).sum(dim=1)
        counts = mask.sum(dim=1, keepdim=True).clamp(min=1e-9)
        return F.normalize(summed / counts, p=2.0, dim=1)


def build_model(**overrides: float) -> nn.Module:
    return SentenceEmbedder({**CONFIG, **overrides})
