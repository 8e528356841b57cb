"""The transformer workload: a tiny causal language model fed dict batches.

Samples are ``{"input_ids": ..., "labels": ...}`` (the labels are the inputs shifted by one);
a ``DataLoader`` collates them into dict batches. The model computes its own loss when given
labels and returns ``{"loss": ..., "logits": ...}``, the shape of a Hugging Face model.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

VOCAB, LENGTH, WIDTH, HEADS, LAYERS = 128, 32, 64, 4, 2


class TokenSequences(Dataset):
    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens  # (n, LENGTH + 1)

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.tokens[index]
        return {"input_ids": row[:-1], "labels": row[1:]}


def make_tokens(n: int, seed: int) -> torch.Tensor:
    """Sequences following ``next = (3 * token + 1) mod VOCAB``, one token in ten random."""
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.empty(n, LENGTH + 1, dtype=torch.long)
    tokens[:, 0] = torch.randint(0, VOCAB, (n,), generator=generator)
    for t in range(1, LENGTH + 1):
        tokens[:, t] = (3 * tokens[:, t - 1] + 1) % VOCAB
    noise = torch.rand(n, LENGTH + 1, generator=generator) < 0.1
    tokens[noise] = torch.randint(0, VOCAB, (int(noise.sum()),), generator=generator)
    return tokens


def loaders(n_train: int, n_val: int, batch_size: int, seed: int,
            pin_memory: bool = False) -> tuple[DataLoader, DataLoader]:
    """Collated in the main process; ``pin_memory`` for the GPU check's non_blocking copies."""
    tokens = make_tokens(n_train + n_val, seed)
    train = DataLoader(TokenSequences(tokens[:n_train]), batch_size=batch_size, shuffle=True,
                       drop_last=True, generator=torch.Generator().manual_seed(seed),
                       pin_memory=pin_memory)
    return train, DataLoader(TokenSequences(tokens[n_train:]), batch_size=batch_size,
                             pin_memory=pin_memory)


class TinyLM(nn.Module):
    """Token and position embeddings, a causal nn.TransformerEncoder, a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.position = nn.Parameter(torch.zeros(LENGTH, WIDTH))
        layer = nn.TransformerEncoderLayer(WIDTH, HEADS, dim_feedforward=2 * WIDTH,
                                           dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
        self.head = nn.Linear(WIDTH, VOCAB)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(LENGTH),
                             persistent=False)

    def forward(self, input_ids: torch.Tensor,
                labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        length = input_ids.shape[1]
        hidden = self.embed(input_ids) + self.position[:length]
        hidden = self.encoder(hidden, mask=self.mask[:length, :length], is_causal=True)
        logits = self.head(hidden)
        out = {"logits": logits}
        if labels is not None:
            out["loss"] = nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return out


def make_lm(seed: int = 0) -> TinyLM:
    torch.manual_seed(seed)
    return TinyLM()
