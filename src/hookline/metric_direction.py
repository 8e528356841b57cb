"""Which way a metric should move, read from its name.

The engine's fitness and the monitoring callbacks (EarlyStopping, ModelCheckpoint,
ReduceLROnPlateau) must agree on whether ``val_mae`` going up is better or worse; one word list
here keeps them from drifting apart.
"""

from __future__ import annotations

import re

__all__ = ["direction"]

# Words of metric names whose value should go down; checked before the "up" words so that
# "dice_loss" is a loss and "mape" is an error, not a mAP.
DOWN = ("loss", "error", "err", "mse", "mae", "mape", "rmse", "msle", "perplexity", "ppl",
        "wer", "cer")
UP = ("acc", "accuracy", "f1", "fbeta", "map", "auc", "auroc", "auprc", "precision", "recall",
      "iou", "miou", "dice", "jaccard", "fitness", "r2", "top", "bleu", "rouge", "ssim", "psnr")


def direction(name: str) -> str | None:
    """``"min"`` for a name with a "down" word (loss, error, mae, ...), ``"max"`` for one with
    an "up" word (accuracy, f1, map, ...), None when the name says neither."""
    words = [word for word in re.split(r"[^a-z0-9]+", name.lower()) if word]
    if any(_matches(word, token) for word in words for token in DOWN):
        return "min"
    if any(_matches(word, token) for word in words for token in UP):
        return "max"
    return None


def _matches(word: str, token: str) -> bool:
    """``loss`` matches "loss", "valloss" and "loss2"; short tokens ("cer") only whole words,
    so "cancer_recall" is a recall."""
    if word == token or re.fullmatch(re.escape(token) + r"\d+", word):
        return True
    return len(token) >= 4 and token in word
