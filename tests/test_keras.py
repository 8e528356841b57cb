"""The Keras door: Model.fit/evaluate/predict, Keras callbacks, logs and self.model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hookline
from hookline import keras
from hookline.testing import tiny_data, tiny_model


def make_model(**options):
    settings = dict(optimizer="sgd", loss="cross_entropy", metrics=["accuracy"], lr=0.1,
                    device="cpu")
    settings.update(options)
    return hookline.Model(tiny_model(), **settings)


class LogKeys(keras.Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def _record(self, name, *args, logs=None):
        self.seen.append((name, *args, sorted((logs or {}).keys())))

    def on_train_begin(self, logs=None): self._record("train_begin", logs=logs)
    def on_train_end(self, logs=None): self._record("train_end", logs=logs)
    def on_epoch_begin(self, epoch, logs=None): self._record("epoch_begin", epoch, logs=logs)
    def on_epoch_end(self, epoch, logs=None): self._record("epoch_end", epoch, logs=logs)
    def on_train_batch_begin(self, batch, logs=None): self._record("tb_begin", batch, logs=logs)
    def on_train_batch_end(self, batch, logs=None): self._record("tb_end", batch, logs=logs)
    def on_test_begin(self, logs=None): self._record("test_begin", logs=logs)
    def on_test_end(self, logs=None): self._record("test_end", logs=logs)
    def on_test_batch_begin(self, batch, logs=None): self._record("vb_begin", batch, logs=logs)
    def on_test_batch_end(self, batch, logs=None): self._record("vb_end", batch, logs=logs)
    def on_predict_begin(self, logs=None): self._record("predict_begin", logs=logs)
    def on_predict_end(self, logs=None): self._record("predict_end", logs=logs)
    def on_predict_batch_begin(self, batch, logs=None): self._record("pb_begin", batch, logs=logs)
    def on_predict_batch_end(self, batch, logs=None): self._record("pb_end", batch, logs=logs)


def test_fit_calls_every_keras_method_with_keras_log_keys():
    x, y = tiny_data(samples=8)
    callback = LogKeys()
    history = make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, validation_split=0.5,
                               callbacks=[callback])
    train, val = ["accuracy", "loss"], ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert callback.seen == [
        ("train_begin", []), ("epoch_begin", 0, []),
        ("tb_begin", 0, []), ("tb_end", 0, train),
        ("test_begin", []), ("vb_begin", 0, []), ("vb_end", 0, ["accuracy", "loss"]),
        ("test_end", ["accuracy", "loss"]),
        ("epoch_end", 0, val), ("train_end", val)]
    assert isinstance(history, hookline.History) and history.epoch == [0]
    assert set(history.history) == set(val)


@pytest.mark.parametrize("options, epochs, steps", [
    ({"limit_train_batches": 2}, 3, 2),
    ({"fast_dev_run": True}, 1, 1),
    ({"steps_per_epoch": 10}, 3, 6),  # the data holds 6 batches: fit runs 6
])
def test_params_say_what_fit_runs(options, epochs, steps):
    class Params(keras.Callback):
        def on_train_begin(self, logs=None):
            self.seen, self.batches = dict(self.params), 0

        def on_train_batch_end(self, batch, logs=None):
            self.batches += 1
    x, y = tiny_data(samples=48)
    callback = Params()
    make_model().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[callback], **options)
    assert callback.seen == {"epochs": epochs, "verbose": 0, "steps": steps}
    assert callback.batches == epochs * steps


def test_the_sanity_pass_calls_no_keras_test_method():
    x, y = tiny_data(samples=16)
    callback = LogKeys()
    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, validation_split=0.5,
                     num_sanity_val_steps=1, callbacks=[callback])
    names = [entry[0] for entry in callback.seen]
    assert names[0] == "train_begin"  # before: test_begin/vb_*/test_end of the sanity pass
    assert names.count("test_begin") == names.count("test_end") == 1


def test_evaluate_and_predict_with_callbacks():
    x, y = tiny_data(samples=8)
    model = make_model()
    callback = LogKeys()
    loss, accuracy = model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[callback])
    assert 0 <= accuracy <= 1 and loss > 0
    assert [s[0] for s in callback.seen] == ["test_begin", "vb_begin", "vb_end", "vb_begin",
                                             "vb_end", "test_end"]
    callback.seen.clear()
    outputs = model.predict(x.numpy(), batch_size=4, callbacks=[callback])
    assert isinstance(outputs, np.ndarray) and outputs.shape == (8, 3)
    assert callback.seen[2] == ("pb_end", 0, ["outputs"])
    np.testing.assert_allclose(outputs, model.module(x).detach().numpy(), atol=1e-6)
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}


def test_evaluate_prints_its_values_as_keras_progbar_does(capsys):
    """Four decimals, and exponent form at or below 1e-3, where decimals would print 0."""
    module = torch.nn.Linear(3, 1)
    torch.nn.init.zeros_(module.weight), torch.nn.init.zeros_(module.bias)
    model = hookline.Model(module, optimizer="sgd", loss="mse", metrics=["mae"],
                           device="cpu")
    x, y = torch.randn(8, 3), torch.full((8, 1), 1e-4)
    model.evaluate(x, y, verbose=1)
    assert capsys.readouterr().out.strip() == "loss: 1.0000e-08 - mae: 1.0000e-04"


def test_accuracy_with_binary_crossentropy_thresholds_the_probabilities_at_a_half():
    """Keras maps "accuracy" with binary crossentropy to binary accuracy at 0.5; hookline
    thresholded the probabilities at 0 (a logit's rule) and reported the share of positives."""
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    y = (x[:, 0] > 0.5).float()
    net = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Sigmoid())
    model = hookline.Model(net, optimizer="adam", lr=0.05, loss="binary_crossentropy",
                           metrics=["accuracy"], device="cpu")
    history = model.fit(x, y, epochs=10, batch_size=32, verbose=0)
    probabilities = torch.from_numpy(model.predict(x)).squeeze(1)
    by_hand = ((probabilities > 0.5).float() == y).float().mean().item()
    assert by_hand > 0.9 and y.mean().item() < 0.5  # not the share of positives
    assert model.evaluate(x, y, verbose=0, return_dict=True)["accuracy"] == pytest.approx(by_hand)
    assert history.history["accuracy"][-1] > 0.8


def test_a_detector_predicts_arrays_padded_as_keras_cv_detectors_return_them():
    """A predict step returning boxes gives KerasCV's dict of -1-padded arrays (it raised a
    TypeError: there is no output row to stack), each image's boxes those the Predictor
    gives it."""
    from hookline.boxes import Boxes, padded_detections
    from hookline.detection.model import shapes_detector
    from hookline.detection.shapes import ShapesDataset

    torch.manual_seed(0)
    detector = shapes_detector()
    images = ShapesDataset(6, seed=3).images
    detector.conf = 0.0  # then the median score of every candidate: images differ in count
    scores = torch.cat([r.boxes.conf for r in hookline.Predictor(detector, device="cpu")(images)])
    detector.conf = float(scores.median())
    found = keras.Model(detector).predict(images, batch_size=4)
    plain = hookline.Predictor(detector, device="cpu")(images)
    assert set(found) == {"boxes", "confidence", "classes", "num_detections"}
    counts = [len(result.boxes) for result in plain]
    assert found["num_detections"].tolist() == counts and len(set(counts)) > 1
    assert found["boxes"].shape == (6, max(counts), 4)
    for i, result in enumerate(plain):
        k = counts[i]
        np.testing.assert_allclose(found["boxes"][i, :k], result.boxes.xyxy.numpy(), rtol=1e-6)
        np.testing.assert_allclose(found["confidence"][i, :k], result.boxes.conf.numpy())
        assert found["classes"][i, :k].tolist() == result.boxes.cls.long().tolist()
        assert (found["boxes"][i, k:] == -1).all() and (found["classes"][i, k:] == -1).all()

    class BoxesOnTheFirstOnly(hookline.Callback):  # a postprocess that forgot the others
        def on_predict_postprocess_end(self, predictor):
            for result in predictor.results:
                result.boxes = Boxes(torch.zeros(0, 6)) if result.index == 0 else None

    with pytest.raises(ValueError, match="1 of 6 results have boxes"):
        keras.Model(tiny_model()).predict(torch.randn(6, 8), callbacks=[BoxesOnTheFirstOnly()])

    empty = padded_detections([Boxes(torch.zeros(0, 6)), Boxes(torch.zeros(0, 6))])
    assert empty["boxes"].shape == (2, 0, 4) and empty["num_detections"].tolist() == [0, 0]


def test_batch_logs_hold_the_running_mean_loss():
    x, y = tiny_data(samples=12)
    losses, running = [], []

    class Running(keras.Callback):
        def on_train_batch_end(self, batch, logs=None):
            running.append(logs["loss"])

    model = make_model()
    model.add_callback("on_after_loss", lambda t: losses.append(float(t.loss.detach())))
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[Running()])
    assert running == pytest.approx([np.mean(losses[:i + 1]) for i in range(3)])


def test_self_model_stop_training_lr_and_weights():
    x, y = tiny_data(samples=16)
    rates = []

    class Controller(keras.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            rates.append(self.model.optimizer.learning_rate)
            self.model.optimizer.learning_rate = 0.5 * self.model.optimizer.lr

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                self.snapshot = self.model.get_weights()
            if epoch == 2:
                self.model.set_weights(self.snapshot)
                self.model.stop_training = True

    controller = Controller()
    model = make_model()
    history = model.fit(x, y, batch_size=4, epochs=10, verbose=0, callbacks=[controller])
    assert rates == pytest.approx([0.1, 0.05, 0.025])
    assert history.epoch == [0, 1, 2]
    for restored, saved in zip(model.get_weights(), controller.snapshot):
        np.testing.assert_array_equal(restored, saved)


def test_set_weights_checks_shapes():
    model = make_model()
    weights = model.get_weights()
    weights[0] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=r"0.weight has shape \(16, 8\)"):
        model.set_weights(weights)
    with pytest.raises(ValueError, match="got 1 arrays"):
        model.set_weights(weights[:1])


def test_keras_callback_works_on_a_plain_trainer():
    x, y = tiny_data(samples=8)

    class Stopper(keras.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = epoch == 1

    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               epochs=5, verbose=0, device="cpu", callbacks=[Stopper()])
    trainer.fit()
    assert trainer.epoch == 1 and trainer.stop


def test_fit_continues_across_calls_with_the_same_optimizer():
    x, y = tiny_data(samples=8)
    model = make_model(optimizer="adam")
    model.fit(x, y, epochs=1, verbose=0)
    first = model.optimizer.torch_optimizer
    model.fit(x, y, epochs=1, verbose=0)
    assert model.optimizer.torch_optimizer is first
    assert first.state  # Adam moments carried over


def test_validation_data_and_initial_epoch_and_steps():
    x, y = tiny_data(samples=16)
    history = make_model().fit(x, y, batch_size=4, epochs=3, initial_epoch=1,
                               steps_per_epoch=2, validation_data=(x[:4], y[:4]), verbose=0)
    assert history.epoch == [1, 2] and "val_loss" in history.history


def test_ultralytics_spellings_on_model(tmp_path):
    x, y = tiny_data(samples=8)
    model = make_model()
    epochs = []
    model.add_callback("on_train_epoch_end", lambda trainer: epochs.append(trainer.epoch))
    metrics = model.train(x, y, epochs=2, verbose=0)
    assert epochs == [0, 1] and "loss" in metrics
    assert set(model.val(x, y, verbose=0)) == {"loss", "accuracy"}
    path = model.export("onnx", file=tmp_path / "m.onnx", example_input=x[:1])
    assert path.is_file()
    results = list(model(x, stream=True, batch_size=4))
    assert len(results) == 8 and isinstance(results[0], hookline.Result)
    with pytest.raises(ValueError, match="Did you mean on_train_end"):
        model.add_callback("on_train_ned", print)


def test_keras_lambda_callback():
    x, y = tiny_data(samples=8)
    ends = []
    model = make_model()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[keras.LambdaCallback(
        on_epoch_end=lambda epoch, logs: ends.append((epoch, round(logs["loss"], 6))))])
    assert [e for e, _ in ends] == [0, 1]
    with pytest.raises(ValueError, match="Did you mean on_epoch_end"):
        keras.LambdaCallback(on_epoch_ends=print)


def test_regression_losses_accept_flat_targets():
    x = torch.randn(16, 8)
    y = x.sum(dim=1)  # shape (16,), model outputs (16, 1)
    model = hookline.Model(torch.nn.Linear(8, 1), optimizer="sgd", lr=0.05,
                           loss="mean_squared_error", metrics=["mean_absolute_error"],
                           device="cpu")
    history = model.fit(x, y, epochs=5, verbose=0, batch_size=4)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "mean_absolute_error" in history.history


def test_legacy_batch_names_run_with_the_new_ones():
    x, y = tiny_data(samples=8)
    seen = []

    class Both(keras.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(("legacy", batch))

        def on_train_batch_end(self, batch, logs=None):
            seen.append(("new", batch))

    make_model().fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Both()])
    assert seen == [("new", 0), ("legacy", 0), ("new", 1), ("legacy", 1)]


def test_string_metric_names_are_the_keys_keras_logs_them_under():
    x = torch.randn(16, 3)
    y = torch.randn(16, 1)
    model = hookline.Model(torch.nn.Linear(3, 1), optimizer="sgd", loss="mse",
                           metrics=["mae", "mse"])
    history = model.fit(x, y, epochs=1, validation_split=0.25, verbose=0)
    assert sorted(history.history) == ["loss", "mae", "mse", "val_loss", "val_mae", "val_mse"]


def test_a_single_metric_name_is_one_metric_not_its_letters():
    """compile's list(metrics) split metrics="accuracy" into 'a', 'c', 'c'..."""
    x, y = tiny_data(samples=16)
    model = hookline.Model(tiny_model(), loss="cross_entropy", metrics="accuracy",
                           weighted_metrics="accuracy", device="cpu")
    assert model.metrics == ["accuracy"] and model.weighted_metrics == ["accuracy"]
    history = model.fit(x, y, epochs=1, batch_size=8, validation_split=0.5, verbose=0)
    assert {"accuracy", "weighted_accuracy", "val_accuracy", "val_weighted_accuracy"} <= \
        set(history.history)
    model.compile(loss="cross_entropy", metrics="auto")  # the Trainer's default, by name
    assert model.metrics == ["accuracy"]
    model.compile(loss="mse", metrics="auto")
    assert model.metrics == []


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, torch.int32])
def test_integer_labels_of_any_width_train_a_cross_entropy_model(dtype):
    """int32 labels (Keras takes them) gave torch's 'expected target dtype to be Long'."""
    x, y = tiny_data(samples=16)

    def weights(labels):
        torch.manual_seed(0)
        model = hookline.Model(tiny_model(), optimizer="sgd", loss="cross_entropy",
                               metrics=["accuracy"], device="cpu")
        model.fit(x, labels, epochs=2, batch_size=8, shuffle=False, verbose=0,
                  validation_data=(x, labels))
        return model.get_weights(), model.evaluate(x, labels, verbose=0)
    narrow = y.numpy().astype(dtype) if isinstance(dtype, type) else y.to(dtype)
    (expected, expected_scores), (got, scores) = weights(y), weights(narrow)
    assert all(np.array_equal(a, b) for a, b in zip(expected, got))
    assert scores == expected_scores


def test_class_weight_with_a_sample_weight_of_another_length_names_the_lengths():
    x, y = tiny_data(samples=16)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    message = r"sample_weight has 10 samples; every array must have the same number of samples"
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, sample_weight=np.ones(10), epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, sample_weight=np.ones(10), class_weight={0: 1, 1: 2, 2: 1}, epochs=1,
                  verbose=0)


def test_fit_and_evaluate_without_x_name_it():
    """fit(None, y) reached the model as its input: a raw linear() error."""
    _, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    with pytest.raises(ValueError, match=r"Model.fit\(\) needs x, the model's inputs \(y was "
                                         r"given: pass the inputs too\)"):
        model.fit(None, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"Model.evaluate\(\) needs x"):
        model.evaluate(y=y, verbose=0)


def test_class_weight_weighs_training_not_the_rows_validation_split_holds_out():
    x, y = tiny_data(samples=12)
    weights = {0: 5.0, 1: 0.1, 2: 3.0}

    def val_loss(x, y, **fit_options):
        torch.manual_seed(0)
        model = hookline.Model(tiny_model(), optimizer="sgd", loss="cross_entropy", metrics=[])
        return model.fit(x, y, epochs=1, verbose=0, shuffle=False, class_weight=weights,
                         **fit_options).history["val_loss"][0]
    split = val_loss(x, y, validation_split=0.25)
    assert split == pytest.approx(val_loss(x[:9], y[:9], validation_data=(x[9:], y[9:])),
                                  rel=1e-6)


class TwoHeads(torch.nn.Module):
    """A model with several outputs: a dict holding a tensor and a tuple of two."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(8, 3)

    def forward(self, x):
        logits = self.body(x)
        return {"logits": logits, "extra": (logits.sum(dim=1), logits * 2)}


def test_predict_returns_every_output_of_a_several_output_model():
    net = TwoHeads()
    x = torch.randn(10, 8)
    found = hookline.Model(net, device="cpu").predict(x, batch_size=4)  # 3 batches: 4, 4, 2
    with torch.no_grad():
        expected = net(x)
    assert set(found) == {"logits", "extra"} and isinstance(found["extra"], tuple)
    np.testing.assert_allclose(found["logits"], expected["logits"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(found["extra"][0], expected["extra"][0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(found["extra"][1], expected["extra"][1].numpy(), rtol=1e-6)


def test_predict_batch_logs_hold_every_output_of_a_several_output_model():
    class Outputs(keras.Callback):
        def __init__(self):
            super().__init__()
            self.logged = []

        def on_predict_batch_end(self, batch, logs=None):
            self.logged.append(logs["outputs"])

    net, callback, x = TwoHeads(), Outputs(), torch.randn(6, 8)
    hookline.Model(net, device="cpu").predict(x, batch_size=4, callbacks=[callback])
    first = callback.logged[0]
    assert set(first) == {"logits", "extra"} and first["logits"].shape == (4, 3)
    with torch.no_grad():
        np.testing.assert_allclose(first["extra"][1], (net(x[:4])["extra"][1]).numpy(),
                                   rtol=1e-6)


def test_predict_on_a_one_output_model_is_still_one_array():
    found = make_model().predict(torch.randn(10, 8), batch_size=4)
    assert isinstance(found, np.ndarray) and found.shape == (10, 3)


def test_what_a_keras_callback_writes_into_epoch_logs_reaches_history_and_csv(tmp_path):
    class AddsAMetric(keras.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["twice_loss"] = 2 * logs["loss"]

    x, y = tiny_data(samples=32)
    csv = hookline.callbacks.CSVLogger(tmp_path / "log.csv")
    history = make_model().fit(x, y, epochs=2, verbose=0, callbacks=[AddsAMetric(), csv])
    assert history.history["twice_loss"] == [2 * v for v in history.history["loss"]]
    header = (tmp_path / "log.csv").read_text().splitlines()[0].split(",")
    assert "twice_loss" in header


def test_numpy_values_a_keras_callback_logs_are_numbers_every_checkpoint_can_hold(tmp_path):
    class LogsNumpy(keras.Callback):  # Keras code often logs numpy scalars
        def on_epoch_end(self, epoch, logs=None):
            logs["half_loss"] = np.float64(logs["loss"]) / 2
            logs["count"] = np.int64(epoch)
            logs["flag"] = np.bool_(True)
            logs["array"] = np.array(1.5, dtype=np.float32)
            logs["tensor"] = torch.tensor(2.5)

    weights = hookline.callbacks.ModelCheckpoint(dirpath=tmp_path / "weights",
                                                 save_weights_only=True)
    full = hookline.callbacks.ModelCheckpoint(dirpath=tmp_path / "full")
    backup = hookline.callbacks.BackupAndRestore(tmp_path / "backup")
    x, y = tiny_data(samples=32)
    history = make_model().fit(x, y, epochs=2, verbose=0,
                               callbacks=[LogsNumpy(), weights, full, backup])
    expected = {"half_loss": float, "count": int, "flag": bool, "array": float, "tensor": float}
    for name, kind in expected.items():
        assert [type(value) for value in history.history[name]] == [kind, kind], name
    assert history.history["half_loss"] == [v / 2 for v in history.history["loss"]]
    saved = torch.load(weights.best_model_path, weights_only=True)  # callbacks.md's promise
    assert {name: type(saved["metrics"][name]) for name in expected} == expected
    stored = hookline.checkpoint.load_checkpoint(full.best_model_path)
    assert stored["callbacks"]["History"]["history"]["half_loss"] == \
        history.history["half_loss"]


def test_model_add_callback_checks_filters_when_registered():
    model = make_model()
    with pytest.raises(TypeError, match="did you mean every"):
        model.add_callback("on_train_epoch_end", lambda trainer: None, evry=2)
    with pytest.raises(ValueError, match="every"):
        model.add_callback("on_train_epoch_end", lambda trainer: None, every=0)
    assert model._functions == []  # nothing half-registered


def test_a_keras_callback_that_evaluates_or_predicts_during_fit_can_still_stop_it():
    """self.model.evaluate/predict inside on_epoch_end (a common Keras pattern) hands the fit
    back when it returns: stop_training set afterwards stops the fit (before, the model had
    let go of the fit's trainer and training ran all 6 epochs)."""
    x, y = tiny_data(64)

    class PeekThenStop(hookline.keras.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.predict(x[:4], verbose=0)
            self.model.evaluate(x[:8], y[:8], verbose=0)
            if epoch == 1:
                self.model.stop_training = True

    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu",
                           metrics=["accuracy"])
    history = model.fit(x, y, epochs=6, verbose=0, callbacks=[PeekThenStop()])
    assert history.epoch == [0, 1]
    loss, accuracy = model.evaluate(x, y, verbose=0)  # standalone again: a run of its own
    assert loss > 0 and 0 <= accuracy <= 1
