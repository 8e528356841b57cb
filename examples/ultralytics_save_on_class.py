"""Twin of the Ultralytics "Callbacks" page example: save predictions only when a class shows.

Source: the Ultralytics docs page "Callbacks" (Korean edition), FAQ "Ultralytics YOLO에서 예측 모드용 사용자 지정
콜백을 어떻게 연결합니까?": ``save_on_object`` runs at ``on_predict_postprocess_end`` and sets
``predictor.args.save`` per frame, so only frames holding ``class_id`` are saved. A small MLP on
scikit-learn's digits replaces YOLO on a video: a batch of 8 digits plays the part of a frame,
its results (one per digit) the part of the frame's boxes. With ``save_dir`` set, hookline
appends each batch whose ``args.save`` is true to ``save_dir/predictions.csv``.

Difference: the seed reads the one frame's result, ``predictor.results[0].boxes.cls``; here the
batch's classes are ``[r.cls for r in predictor.results]``. To make the outcome checkable, the
script also lists the batches that hold the class (from a plain ``model.predict``).

Run: ``python examples/ultralytics_save_on_class.py [OUTPUT_DIR]``
(default ``runs/examples/save_on_class``).
"""

import argparse
from pathlib import Path

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline

class_id = 2
batch_size = 8


def save_on_object(predictor):
    classes = [r.cls for r in predictor.results]
    if class_id in classes:
        predictor.args.save = True
    else:
        predictor.args.save = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="runs/examples/save_on_class",
                        help="where predictions.csv is written")
    save_dir = Path(parser.parse_args().output_dir)
    (save_dir / "predictions.csv").unlink(missing_ok=True)  # the predictor appends
    torch.manual_seed(0)  # a repeatable run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0
    x_train, y_train, x_test = x[:1500], y[:1500], x[1500:1700]

    # A small classifier, trained briefly (the seed loads a trained YOLO26n)
    model = hookline.Model(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)),
                           optimizer="adam", loss="cross_entropy")
    model.train(x_train, y_train, epochs=3, verbose=0)

    model.add_callback("on_predict_postprocess_end", save_on_object)
    results = model(x_test, stream=True, save=True, save_dir=save_dir, batch_size=batch_size)
    for _ in results:  # a stream: iterating it runs the predictions
        pass

    predicted = model.predict(x_test).argmax(axis=1)
    batches = [i for i in range(0, len(x_test), batch_size)]
    holding = [i // batch_size for i in batches if class_id in predicted[i:i + batch_size]]
    print(f"class {class_id}: {len(holding)} of {len(batches)} batches hold it: {holding}")
    print("saved to", save_dir / "predictions.csv")


if __name__ == "__main__":
    main()
