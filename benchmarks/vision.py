"""The CNN workload: small images, per-sample augmentation in a Dataset, a small CNN.

The augmentation (a random crop of a 4-pixel padded image and a random horizontal flip) is
written in torch: torchvision is not used. Training batches come through
``DataLoader(num_workers=2, pin_memory=True, persistent_workers=True)``, as users feed
images; validation reads the same images unaugmented, in the main process.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

CHANNELS, SIDE, CLASSES, PAD = 3, 32, 10, 4


class AugmentedImages(Dataset):
    """uint8 images, padded once; each item is cropped (and flipped) at random when
    ``augment``, then converted to float in [0, 1]."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, augment: bool) -> None:
        self.padded = nn.functional.pad(images, (PAD, PAD, PAD, PAD))
        self.labels = labels
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.padded[index]
        if self.augment:
            top, left, flip = torch.randint(0, 2 * PAD + 1, (3,)).tolist()
            image = image[:, top:top + SIDE, left:left + SIDE]
            if flip % 2:
                image = image.flip(-1)
        else:
            image = image[:, PAD:PAD + SIDE, PAD:PAD + SIDE]
        return image.float().div_(255), self.labels[index]


def make_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise around a per-class colour, so the task is learnable."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    colours = torch.rand(CLASSES, CHANNELS, 1, 1, generator=generator)
    noise = torch.rand(n, CHANNELS, SIDE, SIDE, generator=generator)
    images = (0.5 * colours[labels] + 0.5 * noise).mul(255).to(torch.uint8)
    return images, labels


def loaders(n_train: int, n_val: int, batch_size: int, seed: int,
            workers: int = 2) -> tuple[DataLoader, DataLoader]:
    images, labels = make_images(n_train + n_val, seed)
    train = AugmentedImages(images[:n_train], labels[:n_train], augment=True)
    val = AugmentedImages(images[n_train:], labels[n_train:], augment=False)
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True,
                              num_workers=workers, pin_memory=True,
                              persistent_workers=workers > 0,
                              generator=torch.Generator().manual_seed(seed))
    return train_loader, DataLoader(val, batch_size=batch_size, shuffle=False)


def make_cnn(seed: int = 0) -> nn.Sequential:
    """Two conv blocks and a linear head: ~25k parameters."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(CHANNELS, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * (SIDE // 4) ** 2, CLASSES))
