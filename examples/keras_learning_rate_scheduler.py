"""Twin of the Keras guide's ``CustomLearningRateScheduler``: set the rate at each epoch start.

Source: the Keras guide "Writing your own callbacks" (Portuguese edition), "Programação da taxa de aprendizagem", ported nearly
line for line on scikit-learn's bundled digits instead of MNIST. The callback reads and writes
``self.model.optimizer.learning_rate`` (alias ``lr``), which is the torch optimizer's rate;
``tf.keras.backend.get_value``/``set_value`` become a plain read and assignment. The rates
change at epochs 3, 6, 9 and 12 as ``LR_SCHEDULE`` says; after ``fit`` the script prints the
rate the torch optimizer ended with, to show the writes reached it.

Run: ``python examples/keras_learning_rate_scheduler.py [OUTPUT_DIR]`` (nothing is written).
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


class CustomLearningRateScheduler(keras.Callback):
    """Learning rate scheduler which sets the learning rate according to schedule.

    Arguments:
        schedule: a function that takes an epoch index
            (integer, indexed from 0) and current learning rate
            as inputs and returns a new learning rate as output (float).
    """

    def __init__(self, schedule):
        super().__init__()
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        if not hasattr(self.model.optimizer, "lr"):
            raise ValueError('Optimizer must have a "lr" attribute.')
        # Get the current learning rate from model's optimizer.
        lr = float(self.model.optimizer.learning_rate)
        # Call schedule function to get the scheduled learning rate.
        scheduled_lr = self.schedule(epoch, lr)
        # Set the value back to the optimizer before this epoch starts
        self.model.optimizer.lr = scheduled_lr
        print(f"\nEpoch {epoch:05d}: Learning rate is {scheduled_lr:6.4f}.")


LR_SCHEDULE = [
    # (epoch to start, learning rate) tuples
    (3, 0.05),
    (6, 0.01),
    (9, 0.005),
    (12, 0.001),
]


def lr_schedule(epoch, lr):
    """Helper function to retrieve the scheduled learning rate based on epoch."""
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for i in range(len(LR_SCHEDULE)):
        if epoch == LR_SCHEDULE[i][0]:
            return LR_SCHEDULE[i][1]
    return lr


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run

    model = get_model()
    model.fit(
        x_train,
        y_train,
        batch_size=64,
        steps_per_epoch=5,
        epochs=15,
        verbose=0,
        callbacks=[
            LossAndErrorPrintingCallback(),
            CustomLearningRateScheduler(lr_schedule),
        ],
    )
    # Not in the seed: the torch optimizer the run used ends at the last scheduled rate.
    torch_optimizer = model.optimizer.torch_optimizer
    print(f"\nthe torch optimizer's final learning rate: "
          f"{torch_optimizer.param_groups[0]['lr']:.4f}")


if __name__ == "__main__":
    main()
