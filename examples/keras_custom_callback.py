"""Twin of the Keras guide's first example: a callback that logs every method and its log keys.

Source: the Keras guide "Writing your own callbacks" (Portuguese edition), "Um exemplo básico" (``CustomCallback``), ported
nearly line for line. Differences: scikit-learn's bundled digits (8x8 images, 64 features, no
download) replace MNIST, and the model is ``hookline.Model`` around ``nn.Linear(64, 1)`` instead
of ``keras.Sequential([Dense(1, input_dim=784)])``. The printed lines match the seed's output:
``[]`` at every begin, ``['loss', 'mean_absolute_error']`` at train and test batch ends, the
``val_*`` keys at epoch end and ``['outputs']`` at predict batch ends.

Run: ``python examples/keras_custom_callback.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline
from hookline import keras


# Define the Keras model to add callbacks to
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


class CustomCallback(keras.Callback):
    def on_train_begin(self, logs=None):
        keys = list(logs.keys())
        print(f"Starting training; got log keys: {keys}")

    def on_train_end(self, logs=None):
        keys = list(logs.keys())
        print(f"Stop training; got log keys: {keys}")

    def on_epoch_begin(self, epoch, logs=None):
        keys = list(logs.keys())
        print(f"Start epoch {epoch} of training; got log keys: {keys}")

    def on_epoch_end(self, epoch, logs=None):
        keys = list(logs.keys())
        print(f"End epoch {epoch} of training; got log keys: {keys}")

    def on_test_begin(self, logs=None):
        keys = list(logs.keys())
        print(f"Start testing; got log keys: {keys}")

    def on_test_end(self, logs=None):
        keys = list(logs.keys())
        print(f"Stop testing; got log keys: {keys}")

    def on_predict_begin(self, logs=None):
        keys = list(logs.keys())
        print(f"Start predicting; got log keys: {keys}")

    def on_predict_end(self, logs=None):
        keys = list(logs.keys())
        print(f"Stop predicting; got log keys: {keys}")

    def on_train_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print(f"...Training: start of batch {batch}; got log keys: {keys}")

    def on_train_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print(f"...Training: end of batch {batch}; got log keys: {keys}")

    def on_test_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print(f"...Evaluating: start of batch {batch}; got log keys: {keys}")

    def on_test_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print(f"...Evaluating: end of batch {batch}; got log keys: {keys}")

    def on_predict_batch_begin(self, batch, logs=None):
        keys = list(logs.keys())
        print(f"...Predicting: start of batch {batch}; got log keys: {keys}")

    def on_predict_batch_end(self, batch, logs=None):
        keys = list(logs.keys())
        print(f"...Predicting: end of batch {batch}; got log keys: {keys}")


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
        epochs=1,
        verbose=0,
        validation_split=0.5,
        callbacks=[CustomCallback()],
    )

    res = model.evaluate(
        x_test, y_test, batch_size=128, verbose=0, callbacks=[CustomCallback()]
    )

    res = model.predict(x_test, batch_size=128, callbacks=[CustomCallback()])
    print("predictions:", res.shape)


if __name__ == "__main__":
    main()
