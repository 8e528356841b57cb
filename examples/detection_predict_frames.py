"""Twin of the Ultralytics "Callbacks" page example: return the frames with the detections.

Source: the Ultralytics docs page "Callbacks" (Korean edition), "예측과 함께 추가 정보 반환하기" (also repeated in
its FAQ): ``on_predict_batch_end`` replaces ``predictor.results`` with
``zip(predictor.results, frames)`` so that iterating the predictions yields
``(result, frame)`` pairs. Here hookline's small CenterNet-style detector
(``hookline.detection``) is trained for a few seconds on generated shapes and predicts on 100
generated frames; each result carries the frame's ``boxes`` (``xyxy``, ``cls``, ``conf``).

Difference: for array input hookline's raw batch is ``(x_batch,)`` and ``x_batch`` holds the
whole batch of frames, so ``_, image, _, _ = predictor.batch`` becomes ``(image,) =
predictor.batch`` and the batch is split into a list of frames. The script then checks that
every frame is the input of its result and how often the boxes found name the shapes drawn.

Run: ``python examples/detection_predict_frames.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse

import torch

import hookline
from hookline.detection import ShapesDataset, load_shapes_data, shapes_detector


def on_predict_batch_end(predictor):
    """Combine prediction results with corresponding frames."""
    (image,) = predictor.batch
    # Ensure that image is a list (of the batch's frames)
    image = image if isinstance(image, list) else list(image)
    # Combine the prediction results with the corresponding frames
    predictor.results = zip(predictor.results, image)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run

    # Create a small detector and train it briefly (the seed loads a trained YOLO26)
    train, _ = load_shapes_data(count=600, batch_size=16)
    model = hookline.Model(shapes_detector(width=16), optimizer="adam", lr=5e-3, device="cpu")
    model.train(train, epochs=3, verbose=0)

    # Add the custom callback to the model
    model.add_callback("on_predict_batch_end", on_predict_batch_end)

    # Iterate through the results and frames
    frames = ShapesDataset(100, seed=11)
    pairs = matched = named = boxes = 0
    for result, frame in model(frames.images, stream=True, batch_size=16):
        pairs += 1
        matched += torch.equal(frame, frames.images[result.index])
        boxes += len(result.boxes)
        truth = frames.targets[result.index]["labels"]
        named += sorted(result.boxes.cls.long().tolist()) == sorted(truth.tolist())
    print(f"(result, frame) pairs: {pairs}; frames matching their result's input: {matched}")
    print(f"boxes found: {boxes}; frames whose boxes name exactly the shapes drawn: {named}")
    print(f"last pair: {result!r} with a frame of shape {tuple(frame.shape)}; first box "
          f"xyxy {[round(v, 1) for v in result.boxes.xyxy[0].tolist()]}")


if __name__ == "__main__":
    main()
