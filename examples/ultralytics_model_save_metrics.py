"""Twin of the Ultralytics "Callbacks" page example: read metrics in ``on_model_save``.

Source: the Ultralytics docs page "Callbacks" (Korean edition), "on_model_save 콜백을 사용하여 모델 메트릭에
액세스하기": ``print_checkpoint_metrics(trainer)`` prints ``best_fitness``, ``loss_names``,
``metrics`` and ``tloss`` each time a checkpoint is written. A small MLP on scikit-learn's digits
replaces YOLO on COCO8. hookline writes checkpoints only when the run has a ``save_dir``
(``OUTPUT_DIR/weights/last.pt`` every epoch, ``best.pt`` when fitness improves) and fires
``on_model_save`` after each write, so the twin passes ``save_dir``.

Run: ``python examples/ultralytics_model_save_metrics.py [OUTPUT_DIR]``
(default ``runs/examples/model_save_metrics``).
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline


def print_checkpoint_metrics(trainer):
    """Print trainer metrics and loss details after each checkpoint is saved."""
    print(
        f"Model details\n"
        f"Best fitness: {trainer.best_fitness}, "
        f"Loss names: {trainer.loss_names}, "  # List of loss names
        f"Metrics: {trainer.metrics}, "
        f"Total loss: {trainer.tloss}"  # Total loss value
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="runs/examples/model_save_metrics",
                        help="where weights/last.pt and weights/best.pt are written")
    save_dir = parser.parse_args().output_dir
    torch.manual_seed(0)  # a repeatable run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0

    # Build a small classifier (the seed loads the YOLO26 model)
    model = hookline.Model(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                           optimizer="adam", loss="cross_entropy", metrics=["accuracy"])

    # Add on_model_save callback.
    model.add_callback("on_model_save", print_checkpoint_metrics)

    # Run model training on the digits, writing checkpoints under save_dir.
    model.train(x, y, epochs=3, validation_split=0.2, save_dir=save_dir, verbose=0)
    print("checkpoints written to", save_dir)


if __name__ == "__main__":
    main()
