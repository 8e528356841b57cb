"""Twin of the Ultralytics "Callbacks" page example ``save_on_object``, on a real detector.

Source: the Ultralytics docs page "Callbacks" (Korean edition), FAQ "Ultralytics YOLO에서 예측 모드용 사용자 지정
콜백을 어떻게 연결합니까?": ``save_on_object`` runs at ``on_predict_postprocess_end``, reads the
frame's ``r.boxes.cls`` and sets ``predictor.args.save`` so that only frames holding
``class_id`` are saved. Here hookline's small CenterNet-style detector
(``hookline.detection``) is trained for a few seconds on generated shapes (squares, circles,
triangles) and the "video" is 60 generated frames, one per batch; ``class_id = 2`` is the
triangle. With ``save_dir`` set, hookline appends each saved frame's boxes to
``save_dir/predictions.csv`` (one row per box).

Difference: YOLO saves annotated frames; hookline saves the boxes as CSV rows. To make the
outcome checkable, the script lists the frames whose boxes hold the class (from a plain
prediction without the callback) and how many of them truly hold a triangle.

Run: ``python examples/detection_save_on_object.py [OUTPUT_DIR]``
(default ``runs/examples/detection_save_on_object``).
"""

import argparse
from pathlib import Path

import torch

import hookline
from hookline.detection import CLASSES, ShapesDataset, load_shapes_data, shapes_detector

class_id = 2  # the triangle


def save_on_object(predictor):
    r = predictor.results[0]
    if class_id in r.boxes.cls:
        predictor.args.save = True
    else:
        predictor.args.save = False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", default="runs/examples/detection_save_on_object",
                        help="where predictions.csv is written")
    save_dir = Path(parser.parse_args().output_dir)
    (save_dir / "predictions.csv").unlink(missing_ok=True)  # the predictor appends
    torch.manual_seed(0)  # a repeatable run

    # A small detector, trained briefly (the seed loads a trained YOLO26n)
    train, _ = load_shapes_data(count=600, batch_size=16)
    model = hookline.Model(shapes_detector(width=16), optimizer="adam", lr=5e-3, device="cpu")
    model.train(train, epochs=3, verbose=0)

    frames = ShapesDataset(60, seed=7)
    model.add_callback("on_predict_postprocess_end", save_on_object)
    results = model(frames.images, stream=True, save=True, save_dir=save_dir, batch_size=1)
    for _ in results:  # a stream: iterating it runs the predictions
        pass

    plain = hookline.Predictor(model.module, device="cpu")(frames.images)
    holding = [r.index for r in plain if class_id in r.boxes.cls]
    truly = sum(class_id in frames.targets[i]["labels"] for i in holding)
    print(f"class {class_id} ({CLASSES[class_id]}): {len(holding)} of {len(plain)} frames "
          f"hold it: {holding}")
    print(f"frames truly holding a {CLASSES[class_id]} among them: {truly}")
    print("saved to", save_dir / "predictions.csv")


if __name__ == "__main__":
    main()
