"""Names users bring from Keras and Lightning: metric keys, hook names, hook signatures."""

from __future__ import annotations

import csv

import pytest
import torch

import hookline
import hookline.keras
from hookline.callbacks import (
    CSVLogger,
    EarlyStopping,
    LearningRateMonitor,
    LearningRateScheduler,
)
from hookline.events import PORTED_NAMES
from hookline.testing import tiny_data, tiny_model


def make_trainer(**options):
    x, y = tiny_data(samples=8)
    defaults = {"loss": "cross_entropy", "train_data": (x, y), "batch_size": 4, "epochs": 3,
                "verbose": 0, "device": "cpu", "optimizer": "sgd", "lr": 0.1}
    defaults.update(options)
    return hookline.Trainer(tiny_model(), **defaults)


# --- metric keys -----------------------------------------------------------------------------
def test_learning_rate_scheduler_logs_keras_learning_rate(tmp_path):
    log = tmp_path / "log.csv"
    trainer = make_trainer(callbacks=[LearningRateScheduler(lambda epoch, lr: 0.1 / 2 ** epoch),
                                      CSVLogger(log)])
    trainer.fit()
    history = trainer.callbacks.find(hookline.History)[0]
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.025])
    with open(log, newline="") as file:
        rows = list(csv.DictReader(file))
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx([0.1, 0.05, 0.025])


def test_keras_model_history_has_learning_rate():
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), optimizer="sgd", loss="cross_entropy", lr=0.2,
                           device="cpu")
    history = model.fit(x, y, epochs=2, verbose=0,
                        callbacks=[LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05])


def test_lr_monitor_lightning_keys_let_a_ported_early_stopping_monitor_them():
    stopper = EarlyStopping(monitor="lr-SGD", mode="max", patience=1)
    trainer = make_trainer(epochs=5, callbacks=[LearningRateMonitor(key_style="lightning"),
                                                stopper])
    trainer.fit()
    assert trainer.metrics["lr-SGD"] == pytest.approx(0.1)
    assert "lr" not in trainer.metrics
    assert stopper.stopped_epoch == 1  # a constant rate never improves


def test_lr_monitor_lightning_keys_per_param_group_and_momentum():
    model = tiny_model()
    layers = [module for module in model.modules() if isinstance(module, torch.nn.Linear)]
    optimizer = torch.optim.SGD([{"params": layers[0].parameters(), "lr": 0.1},
                                 {"params": layers[1].parameters(), "lr": 0.01,
                                  "momentum": 0.9}], lr=0.1)
    values = LearningRateMonitor(log_momentum=True, key_style="both").values(optimizer)
    assert values == pytest.approx({
        "lr": 0.1, "momentum": 0.0, "lr-SGD/pg1": 0.1, "lr-SGD/pg1-momentum": 0.0,
        "lr-group1": 0.01, "momentum-group1": 0.9, "lr-SGD/pg2": 0.01,
        "lr-SGD/pg2-momentum": 0.9})
    optimizer.param_groups[1]["name"] = "head"
    assert "lr-SGD/head" in LearningRateMonitor(key_style="lightning").values(optimizer)


def test_lr_monitor_default_keys_unchanged_and_single_group_key():
    optimizer = torch.optim.Adam(tiny_model().parameters(), lr=0.003)
    assert LearningRateMonitor().values(optimizer) == pytest.approx({"lr": 0.003})
    assert LearningRateMonitor(key_style="lightning", log_weight_decay=True).values(
        optimizer) == pytest.approx({"lr-Adam": 0.003, "lr-Adam-weight_decay": 0.0})
    with pytest.raises(ValueError, match=r"key_style='keras'.*'hookline', 'lightning', 'both'"):
        LearningRateMonitor(key_style="keras")


def test_missing_lightning_key_names_the_option_that_writes_it():
    trainer = make_trainer(callbacks=[LearningRateMonitor(),
                                      EarlyStopping(monitor="lr-SGD", mode="max")])
    with pytest.raises(ValueError, match=r"LearningRateMonitor\(key_style='lightning'\)"):
        trainer.fit()


# --- hook names from other frameworks ------------------------------------------------------
@pytest.mark.parametrize("name, replacement", [
    ("on_validation_epoch_end", "on_val_end"),
    ("on_validation_start", "on_val_start"),
    ("on_validation_batch_end", "on_val_batch_end"),
    ("on_test_epoch_end", "on_val_end"),
    ("on_before_optimizer_step", "optimizer_step"),
    ("on_before_backward", "on_after_loss"),
    ("on_fit_start", "on_pretrain_routine_start or on_train_start"),
    ("on_fit_end", "on_train_end"),
    ("on_save_checkpoint", "on_model_save"),
])
def test_lightning_hook_names_suggest_the_hookline_event(name, replacement):
    trainer = make_trainer()
    with pytest.raises(ValueError, match=rf"'{name}' is Lightning's name; in hookline use "
                                         rf"{replacement}"):
        trainer.add_callback(name, lambda t: None)


def test_lightning_method_name_on_a_native_callback_raises_at_registration():
    class Ported(hookline.Callback):
        def on_validation_epoch_end(self, trainer):
            pass

    with pytest.raises(ValueError, match="Lightning's name; in hookline use on_val_end"):
        make_trainer(callbacks=[Ported()])


def test_every_ported_name_points_at_real_events():
    for name, ported in PORTED_NAMES.items():
        assert name not in hookline.EVENT_NAMES
        assert ported.events and set(ported.events) <= hookline.EVENT_NAMES, name


# --- misspelt methods on every base --------------------------------------------------------
def test_misspelt_method_on_keras_callback_raises_with_nearest_names():
    class Typo(hookline.keras.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

        def on_epoch_ned(self, epoch, logs=None):
            pass

    with pytest.raises(ValueError, match=r"Typo.on_epoch_ned is not a Keras callback method.*"
                                         r"Did you mean on_epoch_end"):
        make_trainer(callbacks=[Typo()])
    x, y = tiny_data(samples=8)
    model = hookline.Model(tiny_model(), loss="cross_entropy", device="cpu")
    with pytest.raises(ValueError, match="Did you mean on_epoch_end"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Typo()])


def test_misspelt_method_on_native_callback_raises_with_nearest_names():
    class Typo(hookline.Callback):
        def on_fit_epoch_end(self, trainer):
            pass

        def on_fit_epoch_ned(self, trainer):
            pass

    with pytest.raises(ValueError, match=r"'on_fit_epoch_ned'. Did you mean on_fit_epoch_end"):
        make_trainer(callbacks=[Typo()])


def test_hookline_and_lightning_names_on_keras_callback_point_to_keras_names():
    class Native(hookline.keras.Callback):
        def on_fit_epoch_end(self, epoch, logs=None):
            pass

    class Lightning(hookline.keras.Callback):
        def on_validation_end(self, logs=None):
            pass

    with pytest.raises(ValueError, match=r"'on_fit_epoch_end' is a hookline event.*"
                                         r"subclass hookline.Callback.*on_epoch_end"):
        make_trainer(callbacks=[Native()])
    with pytest.raises(ValueError, match="Lightning's name; Keras' name for it is on_test_end"):
        make_trainer(callbacks=[Lightning()])


# --- the other door's signature ------------------------------------------------------------
def test_keras_signature_on_native_base_is_an_error():
    class KerasStyle(hookline.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pass

    with pytest.raises(TypeError, match=r"KerasStyle.on_epoch_end\(epoch, logs=None\) cannot "
                                        r"be a hookline hook.*Keras' signature: use "
                                        r"hookline.keras.Callback"):
        make_trainer(callbacks=[KerasStyle()])


def test_keras_signature_on_a_plain_object_is_an_error():
    class Plain:
        def on_train_begin(self, logs=None):
            pass

    with pytest.raises(TypeError, match="Keras' signature"):
        make_trainer(callbacks=[Plain()])


def test_lightning_signature_on_native_base_is_an_error():
    class LightningStyle(hookline.Callback):
        def on_train_epoch_end(self, trainer, pl_module):
            pass

    with pytest.raises(TypeError, match=r"Lightning's signature \(trainer, pl_module, \.\.\.\)"
                                        r".*on_train_epoch_end\(self, trainer\)"):
        make_trainer(callbacks=[LightningStyle()])


def test_native_signature_on_keras_callback_is_an_error():
    class NativeStyle(hookline.keras.Callback):
        def on_epoch_end(self, trainer):
            pass

    class NativeBegin(hookline.keras.Callback):
        def on_train_begin(self, trainer):
            pass

    with pytest.raises(TypeError, match=r"NativeStyle.on_epoch_end\(trainer\) cannot take the "
                                        r"arguments Keras passes.*native signature"):
        make_trainer(callbacks=[NativeStyle()])
    with pytest.raises(TypeError, match=r"on_train_begin\(self, logs=None\).*native signature"):
        make_trainer(callbacks=[NativeBegin()])


def test_correct_signatures_still_register_and_run():
    seen = []

    class Native(hookline.Callback):
        def on_epoch_end(self, trainer):  # a Keras name with hookline's signature: an alias
            seen.append(("native", trainer.epoch))

    class Keras(hookline.keras.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(("keras", epoch))

        def on_train_batch_end(self, batch, logs=None):
            pass

    make_trainer(epochs=1, callbacks=[Native(), Keras()]).fit()
    assert seen == [("native", 0), ("keras", 0)]


def test_functions_with_the_other_doors_signature_are_errors_at_registration():
    trainer = make_trainer()
    with pytest.raises(TypeError, match=r"add_callback\('on_epoch_end', fn\).*\(epoch, logs\) "
                                        r"cannot be a hookline hook.*keras.LambdaCallback"):
        trainer.add_callback("on_epoch_end", lambda epoch, logs: None)
    with pytest.raises(TypeError, match=r"LambdaCallback\(on_train_end=...\).*Keras' signature"):
        hookline.LambdaCallback(on_train_end=lambda logs: None)
    with pytest.raises(TypeError, match=r"keras.LambdaCallback\(on_epoch_end=.*\(trainer\)\): "
                                        r"Keras calls it as lambda epoch, logs"):
        hookline.keras.LambdaCallback(on_epoch_end=lambda trainer: None)
    hookline.keras.LambdaCallback(on_epoch_end=lambda epoch, logs: None,
                                  on_train_begin=lambda logs: None)  # Keras' own: accepted
    trainer.add_callback("on_epoch_end", lambda trainer: None)


def test_hook_methods_defined_on_the_model_are_named_in_a_warning() -> None:
    """A ported LightningModule keeps on_train_epoch_end(self) and configure_optimizers();
    hookline calls neither, so building the Trainer says so instead of training silently
    differently."""
    import warnings

    import torch

    import hookline
    from hookline.testing import tiny_data

    class Ported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layer(x)

        def on_train_epoch_end(self) -> None:
            raise AssertionError("never called")

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def setup(self) -> None:  # a plain method name: not taken for a hook
            pass

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hookline.Trainer(Ported(), loss="cross_entropy", train_data=tiny_data(16), verbose=0)
        explicit = hookline.Trainer(Ported(), optimizer=torch.optim.SGD, lr=0.1,
                                    loss="cross_entropy", train_data=tiny_data(16), verbose=0)
    messages = [str(warning.message) for warning in caught]
    assert len([m for m in messages if "Ported.on_train_epoch_end: hookline calls hooks on "
                "callbacks, not on the model" in m]) == 2
    assert len([m for m in messages if "configure_optimizers() is not called" in m]) == 1
    assert not any("setup" in m for m in messages)
    explicit.fit()  # and the hook is indeed not called

    with warnings.catch_warnings(record=True) as plain:
        warnings.simplefilter("always")
        hookline.Trainer(torch.nn.Linear(8, 3), loss="cross_entropy",
                         train_data=tiny_data(16), verbose=0)
    assert not [w for w in plain if "hookline calls hooks" in str(w.message)]
