"""A model with two inputs, trained with per-sample weights through the Keras door.

``forward(image, ink)`` takes a digit image and a side feature (the image's ink per row);
``Model.fit([images, ink], y, sample_weight=w)`` passes both inputs, as Keras does, and weighs
each sample's loss by ``w`` (Keras' meaning: the weighted sum divided by the batch size). Here
the odd digits count twice. ``weighted_metrics`` report the weighted accuracy beside the plain
one. Data: scikit-learn's bundled digits (no download).

Run: ``python examples/any_model_two_inputs.py``.
"""

from __future__ import annotations

import torch
from torch import nn

import hookline
from hookline.demo import load_digits_data


class ImageAndInk(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.image = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU())
        self.ink = nn.Linear(8, 64)
        self.head = nn.Linear(64, 10)

    def forward(self, image: torch.Tensor, ink: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.image(image) + self.ink(ink)))


def main() -> None:
    (x, y), (x_val, y_val) = load_digits_data()
    ink, ink_val = x.sum(dim=(1, 3)), x_val.sum(dim=(1, 3))  # (N, 8): ink per row
    weights = 1.0 + (y % 2).float()  # odd digits count twice
    torch.manual_seed(0)
    model = hookline.Model(ImageAndInk(), optimizer="adam", loss="cross_entropy",
                           metrics=["accuracy"], weighted_metrics=["accuracy"], device="cpu")
    history = model.fit([x, ink], y, sample_weight=weights, epochs=6, batch_size=64,
                        validation_data=((x_val, ink_val), y_val, 1.0 + (y_val % 2).float()),
                        verbose=0, seed=0)
    for epoch, (loss, accuracy, weighted) in enumerate(zip(
            history.history["loss"], history.history["val_accuracy"],
            history.history["val_weighted_accuracy"])):
        print(f"epoch {epoch + 1}: loss {loss:.4f} val_accuracy {accuracy:.4f} "
              f"val_weighted_accuracy {weighted:.4f}")
    print(f"predictions {tuple(model.predict([x_val, ink_val]).shape)}")


if __name__ == "__main__":
    main()
