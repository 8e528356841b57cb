"""Detection on hookline: Result.boxes, a CenterNet-style detector trained on generated shapes
with its loss parts in every log, boxes from predict, and mAP@0.5 by pycocotools' COCOeval."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

import hookline
from hookline.boxes import Boxes
from hookline.callbacks import CSVLogger, ProgressBar
from hookline.detection import (
    CLASSES,
    ShapesDataset,
    coco_map,
    collate_dict,
    collate_tuple,
    decode,
    load_shapes_data,
    shapes_detector,
)
from hookline.loggers import PlotResults

PARTS = ("train/box", "train/cls", "train/obj", "val/box", "val/cls", "val/obj")
MAP50_FLOOR = 0.6  # measured ~0.9 with these settings; a broken decode or loss gives < 0.1


# --- Boxes -----------------------------------------------------------------------------------

def test_boxes_read_like_ultralytics() -> None:
    boxes = Boxes(torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.9, 2.0],
                                [1.0, 1.0, 3.0, 5.0, 0.5, 0.0]]))
    assert len(boxes) == 2
    assert boxes.xyxy.tolist() == [[0, 0, 4, 2], [1, 1, 3, 5]]
    assert boxes.xywh.tolist() == [[2, 1, 4, 2], [2, 3, 2, 4]]
    assert boxes.conf.tolist() == pytest.approx([0.9, 0.5])
    assert 2 in boxes.cls and 1 not in boxes.cls  # Ultralytics' `class_id in r.boxes.cls`
    assert [box.cls.tolist() for box in boxes] == [[2.0], [0.0]]
    as_numpy = boxes.cpu().numpy()
    assert isinstance(as_numpy.xyxy, np.ndarray) and as_numpy.xywh.tolist() == boxes.xywh.tolist()
    assert 2 in as_numpy.cls
    assert len(Boxes(torch.zeros(0, 6))) == 0
    with pytest.raises(ValueError, match=r"\(N, 6\) array of x1, y1, x2, y2, conf, cls"):
        Boxes(torch.zeros(3, 4))


# --- the data ----------------------------------------------------------------------------------

def test_shapes_boxes_are_tight_around_each_drawn_shape() -> None:
    data = ShapesDataset(50, size=32, seed=3)
    counts = set()
    for image, target in (data[i] for i in range(len(data))):
        assert image.shape == (3, 32, 32) and image.dtype == torch.float32
        counts.add(len(target["labels"]))
        for box, label in zip(target["boxes"].long().tolist(), target["labels"].tolist()):
            x1, y1, x2, y2 = box
            # a shape is one bright colour (the background is darker): find this one's
            corner = image[:, y1:y2, x1:x2]
            bright = (corner >= 0.5).all(0)
            colour = corner[:, bright].mode(dim=1).values[:, None, None]
            mine = (image == colour).all(0)
            inside = mine[y1:y2, x1:x2]
            # tight: each edge of the box touches the shape, which lies wholly inside it
            assert inside[0].any() and inside[-1].any()
            assert inside[:, 0].any() and inside[:, -1].any()
            assert int(inside.sum()) == int(mine.sum())
            assert label in range(len(CLASSES))
    assert counts == {1, 2, 3}, "images hold different numbers of boxes"
    again = ShapesDataset(50, size=32, seed=3)
    assert torch.equal(again.images, data.images), "generation is seeded"


def test_collates_give_dict_and_tuple_batches_with_a_list_per_image() -> None:
    data = ShapesDataset(4, seed=1)
    items = [data[i] for i in range(4)]
    batch = collate_dict(items)
    assert batch["image"].shape == (4, 3, 32, 32)
    assert [len(b) for b in batch["boxes"]] == [len(t["labels"]) for _, t in items]
    images, targets = collate_tuple(items)
    assert torch.equal(images, batch["image"]) and targets[2] is items[2][1]


# --- training, logs, predict, mAP -------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Any, Any]:
    out = tmp_path_factory.mktemp("detect")
    torch.manual_seed(0)
    train, val = load_shapes_data(count=600, batch_size=16, seed=0)
    console = io.StringIO()
    plots = PlotResults(out / "results.png")
    trainer = hookline.Trainer(
        shapes_detector(width=16), train_data=train, val_data=val, epochs=3, lr=5e-3, seed=0,
        device="cpu", metrics=[], save_dir=out, verbose=0,
        callbacks=[CSVLogger(out / "results.csv"), plots,
                   ProgressBar(verbose=2, file=console)])
    trainer.fit()
    return trainer, out, val, (plots, console)


def test_loss_parts_reach_the_csv_the_plots_and_the_console(trained: Any) -> None:
    trainer, out, _, (plots, console) = trained
    assert trainer.loss_names == ["box", "cls", "obj"]
    assert trainer.tloss is not None and trainer.tloss.shape == (3,)
    with open(out / "results.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 3 and set(PARTS) <= set(rows[0])
    first, last = (sum(float(row[name]) for name in PARTS[:3]) for row in (rows[0], rows[-1]))
    assert last < first, "the detector learns"
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {part: set(plots.plotted[part]) for part in ("box", "cls", "obj")} == {
        part: {f"train/{part}", f"val/{part}"} for part in ("box", "cls", "obj")}
    last_line = console.getvalue().strip().splitlines()[-1]
    assert all(f"{name}: " in last_line for name in PARTS), last_line


def test_validation_map50_by_cocoeval_is_above_the_floor(trained: Any) -> None:
    trainer, _, val, _ = trained
    scores = coco_map(trainer.model, val)
    print(f"validation mAP@0.5 {scores['map50']:.3f}, mAP@0.5:0.95 {scores['map']:.3f}")
    assert scores["map50"] > MAP50_FLOOR
    untrained = coco_map(shapes_detector(width=16), val)
    assert untrained["map50"] < 0.1, "the measure tells a trained detector from a random one"


def test_predict_yields_boxes_near_the_true_ones(trained: Any) -> None:
    trainer, _, val, _ = trained
    images = val.dataset.images[:32]
    results = trainer.predict(images)
    assert len(results) == 32 and all(isinstance(r.boxes, Boxes) for r in results)
    assert repr(results[0]) == f"Result(index=0, boxes={len(results[0].boxes)})"
    right = 0
    for result in results:
        truth = val.dataset.targets[result.index]
        found = sorted(result.boxes.cls.long().tolist())
        right += found == sorted(truth["labels"].tolist())
        assert (result.boxes.conf >= 0.25).all()  # the predict step's conf
    assert right >= 20, f"only {right} of 32 images got their classes right"
    with pytest.raises(TypeError, match="result.boxes.cls"):
        results[0].cls  # noqa: B018 - a detection result holds no class scores


def test_saving_writes_a_row_per_box(trained: Any, tmp_path: Path) -> None:
    trainer, _, val, _ = trained
    results = trainer.predict(val.dataset.images[:8], save=True, save_dir=tmp_path)
    with open(tmp_path / "predictions.csv") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ["index", "cls", "conf", "x1", "y1", "x2", "y2"]
    assert len(rows) == sum(len(r.boxes) for r in results)
    first = results[0].boxes.xyxy[0].tolist()
    assert [float(rows[0][k]) for k in ("x1", "y1", "x2", "y2")] == pytest.approx(first, abs=0.01)


def test_raw_outputs_become_boxes_in_a_postprocess_or_a_callback(trained: Any) -> None:
    trainer, _, val, _ = trained
    images = val.dataset.images[:6]
    plain = trainer.model  # called through forward only: the predictor sees the raw maps
    expected = trainer.predict(images)

    def to_boxes(predictor: Any) -> None:  # on_predict_postprocess_end: outputs -> boxes
        for result, boxes in zip(predictor.results, decode(predictor.outputs, plain.stride)):
            result.boxes = boxes

    predictor = hookline.Predictor(plain, device="cpu", step=lambda engine, batch:
                                   engine.model(batch[0]))
    predictor.add_callback("on_predict_postprocess_end", to_boxes)
    by_callback = predictor(images)
    assert [r.boxes.data.tolist() for r in by_callback] == \
        [r.boxes.data.tolist() for r in expected]

    def postprocess(maps: Any, first_index: int) -> list[hookline.Result]:
        return [hookline.Result(first_index + i, None, boxes)
                for i, boxes in enumerate(decode(maps, plain.stride))]

    by_postprocess = hookline.Predictor(plain, device="cpu", postprocess=postprocess,
                                        prediction=lambda maps: maps, batch_size=4,
                                        step=lambda engine, batch: engine.model(batch[0]))
    results = by_postprocess(images)  # two batches of a dict of three maps each
    assert [r.index for r in results] == list(range(6))
    assert [r.boxes.data.tolist() for r in results] == [r.boxes.data.tolist() for r in expected]


def test_the_trained_detector_exports_to_onnx_without_an_example(trained: Any) -> None:
    trainer, out, val, _ = trained
    path = trainer.export("onnx")
    assert path == out / "weights" / "model.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == ["image"]
    assert [node.name for node in session.get_outputs()] == ["obj", "cls", "box"]
    images = val.dataset.images[:3]
    maps = dict(zip(["obj", "cls", "box"], session.run(None, {"image": images.numpy()})))
    with torch.no_grad():
        expected = trainer.model.eval()(images)
    for name, value in maps.items():
        np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-4)


def test_tuple_batches_train_the_same_detector() -> None:
    train, _ = load_shapes_data(count=40, batch_size=8, dict_batches=False)
    trainer = hookline.Trainer(shapes_detector(width=8), train_data=train, epochs=1,
                               device="cpu", verbose=0, default_callbacks=False)
    metrics = trainer.fit()
    assert set(metrics) == {"loss", "train/box", "train/cls", "train/obj"}
    assert trainer.input_signature["args"] == [{"shape": [None, 3, 32, 32],
                                                "dtype": "float32"}]


def test_the_summarys_forward_pass_is_not_taken_for_the_models_inputs(capsys: Any) -> None:
    # verbose=2 adds ModelSummary, whose forward pass at on_train_start gets the whole dict
    # batch (and fails, harmlessly); the signature must come from the training step's call
    train, _ = load_shapes_data(count=20, batch_size=8)
    trainer = hookline.Trainer(shapes_detector(width=8), train_data=train, epochs=1,
                               device="cpu", verbose=2, metrics=[])
    trainer.fit()
    assert "output shapes unknown" in capsys.readouterr().out  # the summary did call it
    assert trainer.input_signature["args"] == [{"shape": [None, 3, 32, 32],
                                                "dtype": "float32"}]
    assert not trainer.input_signature["kwargs"]


def test_bad_batches_name_the_fix() -> None:
    model = shapes_detector(width=8)
    with pytest.raises(ValueError, match="needs an 'image' entry"):
        model.training_step({"pixels": torch.zeros(1, 3, 32, 32)})
    with pytest.raises(ValueError, match="needs targets"):
        model.training_step(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1"):
        load_shapes_data(val_fraction=1.5)


def test_the_detector_trains_from_the_command_line(tmp_path, monkeypatch) -> None:
    import csv

    from hookline.cli import main
    monkeypatch.chdir(tmp_path)
    assert main(["train", "model=shapes_detector", "data=shapes", "epochs=1", "verbose=0",
                 "plots=False"]) == 0
    with open(tmp_path / "runs" / "train" / "results.csv") as file:
        header = next(csv.reader(file))
    assert {"train/box", "train/cls", "train/obj", "val/box"} <= set(header)
    assert (tmp_path / "runs" / "train" / "weights" / "best.pt").is_file()
