"""A Hugging Face model trained by hookline: dict batches and the model's own loss.

A two-layer BERT classifier is built from a small ``BertConfig`` with random weights (nothing is
downloaded) and trained on token sequences generated here: the label says whether token 1
occurs more often than token 2. Batches are dicts (``input_ids``, ``attention_mask``,
``labels``) that go to the model whole; the model computes its loss from ``labels``, so no
``loss=`` is given, and ``val_accuracy`` reads the output's ``logits``.

Run: ``python examples/any_model_hf_text.py [OUTPUT_DIR]`` (needs ``pip install
'hookline[hf]'``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import hookline


def make_text(samples: int, length: int = 16, vocab: int = 12, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (samples, length), generator=generator)
    ones = torch.randint(0, 5, (samples,), generator=generator)
    twos = torch.randint(0, 5, (samples,), generator=generator)
    for row in range(samples):  # put token 1 and token 2 a chosen number of times
        places = torch.randperm(length, generator=generator)
        ids[row, places[:ones[row]]] = 1
        ids[row, places[ones[row]:ones[row] + twos[row]]] = 2
    labels = ((ids == 1).sum(1) > (ids == 2).sum(1)).long()
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def build_model() -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification
    config = BertConfig(vocab_size=12, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    return BertForSequenceClassification(config)


def main(out: Path) -> None:
    trainer = hookline.Trainer(
        build_model(), optimizer="adamw", lr=3e-3, train_data=make_text(512),
        val_data=make_text(256, seed=1), metrics=["accuracy"], batch_size=32, epochs=4,
        seed=0, device="cpu", verbose=0, save_dir=out)
    trainer.add_callback("on_fit_epoch_end", lambda t: print(
        f"epoch {t.epoch + 1}: loss {t.metrics['loss']:.4f} val_loss "
        f"{t.metrics['val_loss']:.4f} val_accuracy {t.metrics['val_accuracy']:.4f}"))
    trainer.fit()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/examples/any_model_hf_text"))
