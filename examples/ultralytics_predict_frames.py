"""Twin of the Ultralytics "Callbacks" page example: return the frames with the predictions.

Source: the Ultralytics docs page "Callbacks" (Korean edition), "예측과 함께 추가 정보 반환하기" (also repeated in
its FAQ): ``on_predict_batch_end`` replaces ``predictor.results`` with
``zip(predictor.results, frames)`` so that iterating the predictions yields
``(result, frame)`` pairs. A small CNN on scikit-learn's 8x8 digit images replaces YOLO on a
video; ``model(source, stream=True)`` is Ultralytics' spelling of a streamed prediction.

Difference: for array input hookline's raw batch is ``(x_batch,)`` and ``x_batch`` holds the
whole batch of images, so ``_, image, _, _ = predictor.batch`` becomes ``(image,) =
predictor.batch`` and the batch is split into a list of frames. The script then checks that
every frame is the input image of its result, and that the Keras-style ``model.predict`` still
returns one array while the callback is registered.

Run: ``python examples/ultralytics_predict_frames.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline


def on_predict_batch_end(predictor):
    """Combine prediction results with corresponding frames."""
    (image,) = predictor.batch
    # Ensure that image is a list (of the batch's frames)
    image = image if isinstance(image, list) else list(image)
    # Combine the prediction results with the corresponding frames
    predictor.results = zip(predictor.results, image)


def small_cnn():
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(8 * 8 * 8, 10))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run
    images, labels = load_digits(return_X_y=True)
    images = images.reshape(-1, 1, 8, 8).astype("float32") / 16.0
    x_train, y_train, x_test = images[:1500], labels[:1500], images[1500:]

    # Create a small model and train it briefly (the seed loads a trained YOLO26)
    model = hookline.Model(small_cnn(), optimizer="adam", loss="cross_entropy")
    model.train(x_train, y_train, epochs=2, verbose=0)

    # Add the custom callback to the model
    model.add_callback("on_predict_batch_end", on_predict_batch_end)

    # Iterate through the results and frames
    pairs = 0
    matched = 0
    for result, frame in model(x_test, stream=True):
        pairs += 1
        matched += torch.equal(frame, torch.from_numpy(x_test[result.index]))
    print(f"(result, frame) pairs: {pairs}; frames matching their result's input: {matched}")
    print(f"last pair: {result!r} class {result.cls} with a frame of shape "
          f"{tuple(frame.shape)}")
    # Not in the seed: the Keras-style predict still returns one array with the callback on
    print("model.predict with the callback registered:", model.predict(x_test).shape)


if __name__ == "__main__":
    main()
