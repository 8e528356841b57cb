"""Twin of the Ultralytics glossary's callback example: print the fitness at each epoch end.

Source: the Ultralytics glossary entry on callbacks, "Implementing Callbacks with Ultralytics YOLO":
``model.add_callback("on_train_epoch_end", fn)`` reading ``trainer.epoch`` and
``trainer.fitness``, then ``model.train(..., epochs=3)``. A small MLP on scikit-learn's digits
replaces YOLO on COCO8; ``hookline.Model`` offers Ultralytics' ``add_callback`` and ``train``.

As in Ultralytics, ``on_train_epoch_end`` fires after the epoch's last batch and *before*
validation, so ``trainer.fitness`` is still the previous epoch's value (None in the first epoch;
``on_fit_epoch_end`` sees the new one). Fitness is the validation accuracy here; the script
prints the per-epoch ``val_accuracy`` at the end so the two can be compared.

Run: ``python examples/ultralytics_epoch_end_fitness.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline


# Define a custom callback function
def on_train_epoch_end(trainer):
    """Callback function to execute at the end of each training epoch."""
    print(f"Epoch {trainer.epoch + 1} complete. Current Fitness: {trainer.fitness}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0

    # Build a small classifier (the seed loads the YOLO26 model)
    model = hookline.Model(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                           optimizer="adam", loss="cross_entropy", metrics=["accuracy"])

    # Register the custom callback to the model
    model.add_callback("on_train_epoch_end", on_train_epoch_end)

    # Train the model with the callback active
    model.train(x, y, epochs=3, validation_split=0.2, verbose=0)

    print("val_accuracy per epoch:", model.history.history["val_accuracy"])


if __name__ == "__main__":
    main()
