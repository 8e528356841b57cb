"""A GAN on digits: two optimizers, each stepped in turn by the engine.

``Trainer(optimizer={"discriminator": ..., "generator": ...})`` runs the training step once per
optimizer for every batch, with ``trainer.optimizer_name`` saying whose turn it is and only
that optimizer's parameters requiring gradients; each optimizer's loss is logged as a loss
part (``train/discriminator``, ``train/generator``). The discriminator's score of real digits
against generated ones is printed each epoch. Data: scikit-learn's bundled digits (no
download).

Run: ``python examples/gan_digits.py``.
"""

from __future__ import annotations

import torch
from torch import nn

import hookline
from hookline.demo import load_digits_data

LATENT = 16
bce = nn.functional.binary_cross_entropy_with_logits


class DigitsGAN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(LATENT, 128), nn.ReLU(), nn.Linear(128, 64),
                                       nn.Sigmoid())
        self.discriminator = nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2),
                                           nn.Linear(128, 1))

    def sample(self, count: int) -> torch.Tensor:
        return self.generator(torch.randn(count, LATENT))


def step(trainer: hookline.Trainer, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    real = batch[0].flatten(1)
    gan, ones, zeros = trainer.model, torch.ones(len(real), 1), torch.zeros(len(real), 1)
    if trainer.optimizer_name == "discriminator":
        fake = gan.sample(len(real)).detach()
        return bce(gan.discriminator(real), ones) + bce(gan.discriminator(fake), zeros)
    return bce(gan.discriminator(gan.sample(len(real))), ones)  # the generator's turn


def main() -> None:
    (x, _), _ = load_digits_data()
    torch.manual_seed(0)
    gan = DigitsGAN()
    trainer = hookline.Trainer(
        gan, training_step=step, train_data=(x,), batch_size=64, epochs=8, seed=0,
        device="cpu", verbose=0,
        optimizer={"discriminator": torch.optim.Adam(gan.discriminator.parameters(), 2e-4,
                                                     betas=(0.5, 0.999)),
                   "generator": torch.optim.Adam(gan.generator.parameters(), 1e-3,
                                                 betas=(0.5, 0.999))})

    def report(t: hookline.Trainer) -> None:
        with torch.no_grad():
            real = torch.sigmoid(gan.discriminator(x[:256].flatten(1))).mean()
            fake = torch.sigmoid(gan.discriminator(gan.sample(256))).mean()
        print(f"epoch {t.epoch + 1}: d_loss {t.metrics['train/discriminator']:.4f} g_loss "
              f"{t.metrics['train/generator']:.4f} D(real) {real:.3f} D(fake) {fake:.3f}")
    trainer.add_callback("on_fit_epoch_end", report)
    trainer.fit()
    print(f"optimizer steps {trainer.step}, loss_names {trainer.loss_names}")


if __name__ == "__main__":
    main()
