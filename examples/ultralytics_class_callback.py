"""Twin of the Ultralytics glossary's class-based callback: ``on_epoch_end(self, trainer)``.

Source: the Ultralytics glossary entry on callbacks (Spanish edition), the ``MyCallback`` example.
The seed could only call the registration "hypothetical" (``trainer.add_callback(my_callback)``);
in hookline it exists, so this twin builds a ``hookline.Trainer`` (a small MLP on scikit-learn's
digits instead of YOLO on COCO128), adds the callback object and trains 3 epochs.

Differences: ``hookline.Callback`` replaces ``BaseCallback``; the validation loss is under
``"val_loss"`` (Keras' naming, which hookline uses) rather than ``"val/loss"``; ``on_epoch_end``
on a native callback is the alias of ``on_fit_epoch_end``, after validation, so the value is
there. The seed's ``except`` only printed the error; this one re-raises it after printing, so a
failure also fails the script.

Run: ``python examples/ultralytics_class_callback.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline


# Define a simple custom callback
class MyCallback(hookline.Callback):
    def on_epoch_end(self, trainer):  # This code will run at the end of each epoch
        print(f"Epoch {trainer.epoch + 1} finished.")
        # Example: Access metrics like validation loss
        if trainer.metrics:
            val_loss = trainer.metrics.get("val_loss", None)  # hookline's key for 'val/loss'
            if val_loss is not None:
                print(f"Validation loss: {val_loss:.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0

    # Build a small model and its trainer (the seed loads YOLOv8n and COCO128)
    trainer = hookline.Trainer(
        nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
        optimizer="adam", loss="cross_entropy",
        train_data=(x[:1400], y[:1400]), val_data=(x[1400:], y[1400:]),
        epochs=3, verbose=0)

    # Initialize your callback
    my_callback = MyCallback()

    # Add the callback to the training process (no longer hypothetical)
    trainer.add_callback(my_callback)

    # Train the model (the callback methods are triggered automatically by the Trainer)
    try:
        print("Training started (callback logic is triggered by the Trainer)...")
        results = trainer.fit()  # Training fires the events
        print("Training finished.")
        print("final metrics:", {name: round(value, 4) for name, value in results.items()})
    except Exception as e:
        print(f"An error occurred: {e}")
        raise


if __name__ == "__main__":
    main()
