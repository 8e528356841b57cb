"""Twin of the Keras guide's ``EarlyStoppingAtMinLoss``: stop at the minimum loss, restore it.

Source: the Keras guide "Writing your own callbacks" (Portuguese edition), "Parada antecipada com perda mínima", ported nearly
line for line on scikit-learn's bundled digits instead of MNIST. The callback reads
``logs["loss"]``, keeps ``self.model.get_weights()`` at the best epoch, sets
``self.model.stop_training = True`` once the loss rises and restores the best weights with
``self.model.set_weights``. ``np.Inf`` became ``np.inf`` (NumPy 2 removed the old spelling).
After ``fit`` the script checks that the model holds the best epoch's weights.

Run: ``python examples/keras_early_stopping_at_min_loss.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline
from hookline import keras


def get_model():
    module = nn.Linear(64, 1)
    model = hookline.Model(
        module,
        optimizer=torch.optim.RMSprop(module.parameters(), lr=0.1),
        loss="mean_squared_error",
        metrics=["mean_absolute_error"],
    )
    return model


# Load the digits data and pre-process it (the seed loads MNIST here)
x, y = load_digits(return_X_y=True)
x = x.reshape(-1, 64).astype("float32") / 16.0
y = y.astype("float32")
x_train, y_train = x[:1000], y[:1000]


class LossAndErrorPrintingCallback(keras.Callback):
    def on_train_batch_end(self, batch, logs=None):
        print(
            "Up to batch {}, the average loss is {:7.2f}.".format(batch, logs["loss"])
        )

    def on_test_batch_end(self, batch, logs=None):
        print(
            "Up to batch {}, the average loss is {:7.2f}.".format(batch, logs["loss"])
        )

    def on_epoch_end(self, epoch, logs=None):
        print(
            "The average loss for epoch {} is {:7.2f} "
            "and mean absolute error is {:7.2f}.".format(
                epoch, logs["loss"], logs["mean_absolute_error"]
            )
        )


class EarlyStoppingAtMinLoss(keras.Callback):
    """Stop training when the loss is at its min, i.e. the loss stops decreasing.

    Arguments:
        patience: Number of epochs to wait after min has been hit. After this
        number of no improvement, training stops.
    """

    def __init__(self, patience=0):
        super().__init__()
        self.patience = patience
        # best_weights to store the weights at which the minimum loss occurs.
        self.best_weights = None

    def on_train_begin(self, logs=None):
        # The number of epoch it has waited when loss is no longer minimum.
        self.wait = 0
        # The epoch the training stops at.
        self.stopped_epoch = 0
        # Initialize the best as infinity.
        self.best = np.inf

    def on_epoch_end(self, epoch, logs=None):
        current = logs.get("loss")
        if np.less(current, self.best):
            self.best = current
            self.wait = 0
            # Record the best weights if current results is better (less).
            self.best_weights = self.model.get_weights()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.stopped_epoch = epoch
                self.model.stop_training = True
                print("Restoring model weights from the end of the best epoch.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0:
            print(f"Epoch {self.stopped_epoch + 1:05d}: early stopping")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run

    model = get_model()
    early_stopping = EarlyStoppingAtMinLoss()
    history = model.fit(
        x_train,
        y_train,
        batch_size=64,
        steps_per_epoch=5,
        epochs=30,
        verbose=0,
        callbacks=[LossAndErrorPrintingCallback(), early_stopping],
    )

    # Not in the seed: show that the run stopped early and the best weights are back.
    restored = all(np.array_equal(now, best) for now, best
                   in zip(model.get_weights(), early_stopping.best_weights))
    print(f"epochs run: {len(history.epoch)} of 30; best loss: {early_stopping.best:.4f}; "
          f"best weights restored: {restored}")


if __name__ == "__main__":
    main()
