"""A variational autoencoder whose training step returns two named losses.

The model declares ``training_step(batch)`` (Lightning's way) returning ``{"recon": ...,
"kl": ...}``: hookline adds them up for the backward pass, keeps each part's running mean
(``trainer.loss_names``, ``trainer.tloss``) and logs ``train/recon``, ``train/kl``,
``val/recon`` and ``val/kl`` beside the total ``loss``, in ``results.csv`` and on
``results.png``. Data: scikit-learn's bundled digits (no download), unlabeled.

Run: ``python examples/any_model_vae_digits.py [OUTPUT_DIR]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

import hookline
from hookline.callbacks import CSVLogger
from hookline.demo import load_digits_data
from hookline.loggers import PlotResults


class DigitsVAE(nn.Module):
    """64 pixels -> a 4-d latent code -> 64 pixels."""

    def __init__(self, latent: int = 4) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(),
                                     nn.Linear(64, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, 64), nn.ReLU(), nn.Linear(64, 64))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decoder(z), mu, logvar

    def training_step(self, batch: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        x = batch[0]
        recon, mu, logvar = self(x)
        per_image = nn.functional.mse_loss(recon, x.flatten(1), reduction="none").sum(1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
        return {"recon": per_image.mean(), "kl": kl.mean()}

    validation_step = training_step


def main(out: Path) -> None:
    (x, _), (x_val, _) = load_digits_data()
    trainer = hookline.Trainer(
        DigitsVAE(), optimizer="adam", lr=2e-3, train_data=(x,), val_data=(x_val,),
        batch_size=64, epochs=8, seed=0, device="cpu", verbose=0, save_dir=out,
        callbacks=[CSVLogger(out / "results.csv"), PlotResults(out / "results.png")])
    trainer.add_callback("on_fit_epoch_end", lambda t: print(
        f"epoch {t.epoch + 1}: " + ", ".join(
            f"{name} {t.metrics[name]:.3f}" for name in
            ("loss", "train/recon", "train/kl", "val/recon", "val/kl"))))
    trainer.fit()
    print(f"loss_names {trainer.loss_names}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/examples/any_model_vae_digits"))
