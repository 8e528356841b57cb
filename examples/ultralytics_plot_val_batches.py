"""Twin of the Ultralytics "Callbacks" page example: plot every validation batch.

Source: the Ultralytics docs page "Callbacks" (Korean edition), FAQ "Ultralytics YOLO에서 검증 중 콜백을 사용해야
하는 이유는 무엇입니까?": ``plot_samples`` runs at ``on_val_batch_end`` so that every validation
batch is plotted, not only the first three. The seed digs ``batch``, ``batch_i`` and ``preds``
out of the caller's frame with ``inspect``; hookline's validator keeps them as attributes
(``validator.batch``, ``validator.batch_i``, ``validator.preds``), so no frame inspection is
needed. A small MLP on scikit-learn's digits replaces YOLO on COCO; each batch becomes one PNG
(``val_batch<i>.png``, matplotlib's Agg backend): the batch's 8x8 images with their label and
predicted class, green when right and red when wrong.

Run: ``python examples/ultralytics_plot_val_batches.py [OUTPUT_DIR]``
(default ``runs/examples/plot_val_batches``).
"""

import argparse
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline


def plot_val_batch(batch, preds, batch_i, save_dir, columns=8):
    """Write the batch's images, labels and predicted classes to save_dir/val_batch<i>.png."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    images, labels = batch
    predicted = preds.argmax(dim=1)
    rows = -(-len(images) // columns)
    mosaic = np.zeros((rows * 11, columns * 9))  # 8x8 images with room for a caption
    for k, image in enumerate(images.reshape(-1, 8, 8)):
        row, column = divmod(k, columns)
        mosaic[row * 11 + 3:row * 11 + 11, column * 9:column * 9 + 8] = image.numpy()
    figure, axes = plt.subplots(figsize=(columns * 0.8, rows * 1.0))
    axes.imshow(mosaic, cmap="gray_r")
    for k, (label, guess) in enumerate(zip(labels.tolist(), predicted.tolist())):
        row, column = divmod(k, columns)
        axes.text(column * 9 + 3.5, row * 11 + 1.5, f"{label}/{guess}", ha="center",
                  va="center", fontsize=9, color="green" if label == guess else "red")
    axes.set_title(f"validation batch {batch_i} (label/predicted)")
    axes.axis("off")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    figure.savefig(Path(save_dir) / f"val_batch{batch_i}.png", dpi=80, bbox_inches="tight")
    plt.close(figure)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="runs/examples/plot_val_batches",
                        help="where the val_batch<i>.png files are written")
    save_dir = parser.parse_args().output_dir
    torch.manual_seed(0)  # a repeatable run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]

    # A small classifier, trained briefly (the seed loads a trained YOLO26n)
    model = hookline.Model(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                           optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    model.train(x_train, y_train, epochs=3, verbose=0)

    def plot_samples(validator):
        plot_val_batch(validator.batch, validator.preds, validator.batch_i, save_dir)

    model.add_callback("on_val_batch_end", plot_samples)
    metrics = model.val(x_val, y_val, batch_size=64, verbose=0)
    print(f"validated {len(x_val)} samples in batches of 64: "
          f"val accuracy {metrics['accuracy']:.3f}")
    print("plots:", ", ".join(sorted(p.name for p in Path(save_dir).glob("val_batch*.png"))))


if __name__ == "__main__":
    main()
