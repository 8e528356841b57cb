"""Twin of the Keras guide's ``LossAndErrorPrintingCallback``: reading values from ``logs``.

Source: the Keras guide "Writing your own callbacks" (Portuguese edition), "Uso de logs dict", ported nearly line for line on
scikit-learn's bundled digits instead of MNIST (``hookline.Model`` around ``nn.Linear(64, 1)``).
``logs["loss"]`` at a batch end is the running mean of the epoch (or evaluation) so far, as in
Keras; at epoch end ``logs`` holds the epoch's loss and ``mean_absolute_error``.

Run: ``python examples/keras_loss_and_error_printing.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse

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
x_test, y_test = x[1000:], y[1000:]


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run

    model = get_model()
    model.fit(
        x_train,
        y_train,
        batch_size=128,
        epochs=2,
        verbose=0,
        callbacks=[LossAndErrorPrintingCallback()],
    )

    res = model.evaluate(
        x_test,
        y_test,
        batch_size=128,
        verbose=0,
        callbacks=[LossAndErrorPrintingCallback()],
    )
    print("evaluate returned [loss, mean_absolute_error]:", [round(v, 4) for v in res])


if __name__ == "__main__":
    main()
