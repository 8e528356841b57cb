"""Bad input gets a clear error: the right type, naming the option and what is allowed."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import hookline
from hookline.testing import RecordingCallback, tiny_data, tiny_model


def trainer(**options):
    x, y = tiny_data(samples=8)
    settings = dict(loss="cross_entropy", train_data=(x, y), batch_size=4, verbose=0,
                    device="cpu")
    settings.update(options)
    return hookline.Trainer(options.pop("model", tiny_model()), **settings)


def test_unknown_event():
    with pytest.raises(ValueError, match=r"unknown event 'on_fit_epoch_ned'.*on_fit_epoch_end"):
        trainer().add_callback("on_fit_epoch_ned", print)


@pytest.mark.parametrize("bad", [5, "on_train_end", None])
def test_non_callable_callback(bad):
    with pytest.raises(TypeError, match=r"callbacks\[0\] is .* listens to no event"):
        trainer(callbacks=[bad])


def test_plain_function_in_callbacks_list_asks_for_an_event():
    with pytest.raises(TypeError, match=r"needs an event: use add_callback"):
        trainer(callbacks=[lambda t: None])


def test_non_callable_function_for_event():
    with pytest.raises(TypeError, match="must be callable"):
        trainer().add_callback("on_train_end", 42)


def test_x_y_length_mismatch():
    x, y = tiny_data(samples=10)
    with pytest.raises(ValueError, match="x has 10 samples but y has 9"):
        trainer(train_data=(x, y[:9]))
    model = hookline.Model(tiny_model(), loss="cross_entropy")
    with pytest.raises(ValueError, match="same number of samples"):
        model.fit(x.numpy(), y[:9].numpy(), validation_split=0.2, verbose=0)


@pytest.mark.parametrize("empty", [(torch.empty(0, 8), torch.empty(0, dtype=torch.long)), []])
def test_empty_data(empty):
    with pytest.raises(ValueError, match="train_data is empty"):
        trainer(train_data=empty)


def test_generator_consumed_after_first_epoch():
    x, y = tiny_data(samples=8)
    batches = ((x[i:i + 4], y[i:i + 4]) for i in (0, 4))
    with pytest.raises(ValueError, match="one-shot iterator"):
        trainer(train_data=batches, epochs=2).fit()


@pytest.mark.parametrize("split", [0.0 - 0.5, 1.0, 1.5])
def test_validation_split_outside_open_interval(split):
    x, y = tiny_data(samples=10)
    model = hookline.Model(tiny_model(), loss="cross_entropy")
    with pytest.raises(ValueError, match=r"validation_split must be in \(0, 1\)"):
        model.fit(x, y, validation_split=split, verbose=0)


def test_unknown_device():
    with pytest.raises(ValueError, match="unknown device 'gpu'; use 'auto', 'cpu', 'cuda'"):
        trainer(device="gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is missing")
def test_cuda_asked_for_without_cuda():
    with pytest.raises(ValueError, match="CUDA is not available here"):
        trainer(device="cuda:0")


def test_auto_device_picks_cuda_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert trainer(device="auto").device.type in (expected, "mps")


def test_unknown_export_format(tmp_path):
    with pytest.raises(ValueError, match=r"unknown export format 'tflite'; use one of"):
        trainer().export("tflite")


def test_loss_returning_non_scalar():
    def per_sample(preds, targets):
        return torch.nn.functional.cross_entropy(preds, targets, reduction="none")

    with pytest.raises(ValueError, match=r"the training step's loss must be a scalar tensor, got \(4,\)"):
        trainer(loss=per_sample).fit()


def test_mismatched_output_and_labels_names_shapes():
    x = torch.randn(8, 8)
    y = torch.randint(0, 7, (8,))  # 7 classes, the model has 3 outputs
    with pytest.raises((IndexError, RuntimeError)) as caught:
        trainer(train_data=(x, y), loss="cross_entropy").fit()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "predictions of shape (4, 3) and targets of shape (4,)" in notes


@pytest.mark.parametrize("options, error, message", [
    (dict(optimizer="sgdd"), ValueError, "unknown optimizer 'sgdd'"),
    (dict(loss="crossentropi"), ValueError, "unknown loss 'crossentropi'"),
    (dict(metrics=["acuracy"]), ValueError, "unknown metric 'acuracy'"),
    (dict(epochs=-1), ValueError, "epochs must be an integer >= 0"),
    (dict(accumulate=0), ValueError, "accumulate must be an integer >= 1"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    (dict(precision="fp8"), ValueError, "unknown precision 'fp8'"),
    (dict(verbose=3), ValueError, "verbose must be 0, 1 or 2"),
    (dict(train_data="data.csv"), TypeError, "train_data must be a DataLoader"),
])
def test_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        trainer(**options)


def test_callbacks_none_or_a_single_callback_are_taken_as_lightning_takes_them():
    """callbacks=None and callbacks=<one callback> raised "'NoneType'/'EarlyStopping' object
    is not iterable"."""
    trainer(callbacks=None).fit()
    recorder = RecordingCallback(events=("on_train_end",))
    trainer(callbacks=recorder).fit()
    assert recorder.events == ["on_train_end"]
    with pytest.raises(TypeError, match=r"callbacks\[0\] is 'on_fit_end' \(str\)"):
        trainer(callbacks="on_fit_end")  # one string is one (wrong) callback, not letters
    seen = []
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    x, y = tiny_data(samples=8)
    model.fit(x, y, epochs=1, verbose=0, batch_size=4, callbacks=hookline.keras.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(epoch)))
    assert seen == [0]


@pytest.mark.parametrize("verbose, level", [(True, 1), (False, 0)])
def test_verbose_true_is_one_as_in_keras(verbose, level):
    assert trainer(verbose=verbose).args.verbose == level
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    x, y = tiny_data(samples=8)
    model.fit(x, y, epochs=1, verbose=verbose, batch_size=4)
    assert model._trainer.args.verbose == level


@pytest.mark.parametrize("dirpath", [5, "", ["ckpt"]])
def test_a_checkpoint_folder_that_is_not_a_path_is_refused_naming_it(dirpath):
    with pytest.raises(TypeError, match=rf"ModelCheckpoint\(dirpath={re.escape(repr(dirpath))}\)"
                                        rf" must be a folder path \(str or Path\)"):
        hookline.callbacks.ModelCheckpoint(dirpath=dirpath)


def test_numpy_object_arrays_are_rejected():
    with pytest.raises(TypeError, match="dtype=object"):
        trainer(train_data=(np.array([{}, {}], dtype=object), np.array([0, 1])))


def test_loss_returning_a_python_float():
    with pytest.raises(TypeError, match="the loss must return a scalar tensor, got float"):
        trainer(loss=lambda preds, targets: 1.0).fit()


def test_training_batch_that_is_not_a_pair():
    x, _ = tiny_data(samples=8)
    with pytest.raises(ValueError, match=r"loss= was given but the batch has no target"):
        trainer(train_data=[x[:2], x[2:4], x[4:6], x[6:]]).fit()  # batches of x only


_NO_VAL_TARGET = r"loss= was given but the validation batch has no target.*val_data " \
                 r"\(Model.fit's validation_data"


def test_validation_batches_without_targets_are_refused_at_the_first_batch():
    x, _ = tiny_data(samples=8)
    seen = []
    run = trainer(val_data=(x,))
    run.add_callback("on_val_batch_end", lambda engine: seen.append(engine.batch_i))
    with pytest.raises(ValueError, match=_NO_VAL_TARGET):
        run.fit()
    assert seen == []  # the first validation batch, not after a pass without val_loss
    with pytest.raises(ValueError, match=_NO_VAL_TARGET):
        hookline.Validator(tiny_model(), data=(x,), loss="cross_entropy", metrics=None,
                           device="cpu").validate()


@pytest.mark.parametrize("metrics", [None, ["accuracy"]])
def test_keras_validation_data_without_targets_is_refused(metrics):
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", metrics=metrics, device="cpu")
    with pytest.raises(ValueError, match=_NO_VAL_TARGET):
        model.fit(x, y, validation_data=x, batch_size=4, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=_NO_VAL_TARGET):
        model.evaluate(x, verbose=0)


class _OwnLoss(torch.nn.Module):
    """A model that computes its own loss from labels in the batch (Hugging Face's way)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 2)

    def forward(self, inputs, labels=None):
        logits = self.linear(inputs)
        loss = torch.nn.functional.cross_entropy(logits, labels) if labels is not None \
            else logits.sum() * 0
        return {"loss": loss, "logits": logits}


def test_validation_without_targets_still_runs_what_needs_none():
    x, y = tiny_data(samples=8)
    own = hookline.Validator(_OwnLoss(), data={"inputs": x, "labels": y}, metrics=None,
                             device="cpu").validate()
    assert set(own) == {"loss"}
    given_loss = hookline.Validator(_OwnLoss(), data={"inputs": x}, loss="cross_entropy",
                                    metrics=None, device="cpu").validate()
    assert set(given_loss) == {"loss"}  # the model's own loss, as training uses it
    custom = hookline.Validator(tiny_model(), data=(x,), loss="cross_entropy", metrics=None,
                                device="cpu",
                                step=lambda engine, batch: engine.model(batch[0]).sum())
    assert set(custom.validate()) == {"loss"}
    assert hookline.Validator(tiny_model(), data=(x,), metrics=None, device="cpu"
                              ).validate() == {}  # no loss asked for: nothing to compute
