"""Registering callbacks three ways, filters, ordering, unknown names and the dispatch lists."""

from __future__ import annotations

import pytest

import hookline
from hookline import Callback, CallbackList, LambdaCallback, filtered
from hookline.testing import tiny_data, tiny_model


def make_trainer(**options):
    x, y = tiny_data(samples=8)
    defaults = dict(loss="cross_entropy", train_data=(x, y), batch_size=2, epochs=2,
                    verbose=0, device="cpu", default_callbacks=False)
    defaults.update(options)
    return hookline.Trainer(tiny_model(), **defaults)


class Engine:
    """A stand-in engine for dispatch-level tests."""


def test_three_doors_register_and_run():
    calls = []

    class Obj(Callback):
        def on_train_epoch_end(self, trainer):
            calls.append(("object", trainer.epoch))

    trainer = make_trainer(callbacks=[Obj(), LambdaCallback(on_train_end=lambda t: calls.append(
        ("lambda", t.epoch)))])
    trainer.add_callback("on_fit_epoch_end", lambda t: calls.append(("function", t.epoch)))
    trainer.fit()
    assert calls == [("object", 0), ("function", 0), ("object", 1), ("function", 1),
                     ("lambda", 1)]


def test_remove_callback_stops_calls():
    calls = []
    def fn(trainer):
        calls.append(trainer.epoch)

    trainer = make_trainer()
    trainer.add_callback("on_fit_epoch_end", fn)
    trainer.remove_callback(fn)
    trainer.fit()
    assert calls == []
    with pytest.raises(ValueError, match="is not registered"):
        trainer.remove_callback(fn)


def test_a_callback_added_or_removed_while_its_event_fires_takes_effect_at_the_next():
    """A handler that removes itself does not make the next one skip this event, and one
    that adds a callback does not run again (an unconditional add used to loop forever); a
    failing handler after such a change is still blamed on its own callback."""
    calls = []

    def once(trainer):
        calls.append(("once", trainer.epoch))
        trainer.remove_callback(once)

    def every(trainer):
        calls.append(("every", trainer.epoch))

    trainer = make_trainer(epochs=3)
    trainer.add_callback("on_train_epoch_end", once)
    trainer.add_callback("on_train_epoch_end", every)
    trainer.fit()
    assert calls == [("once", 0), ("every", 0), ("every", 1), ("every", 2)]

    calls.clear()

    def adder(trainer):
        calls.append(("adder", trainer.epoch))
        trainer.add_callback("on_train_epoch_end", lambda t: calls.append(("added", t.epoch)),
                             order=-10)

    def failing(trainer):
        raise RuntimeError("boom")

    trainer = make_trainer(epochs=2)
    trainer.add_callback("on_train_epoch_end", adder)
    trainer.add_callback("on_train_epoch_end", failing)
    with pytest.raises(RuntimeError, match="boom") as caught:
        trainer.fit()
    assert calls == [("adder", 0)]
    assert any("failing" in note for note in caught.value.__notes__)


def test_keras_alias_on_native_callback_maps_to_fit_epoch_end():
    seen = []

    class Seed000(Callback):
        def on_epoch_end(self, trainer):  # Ultralytics glossary example (seed 000)
            seen.append(dict(trainer.metrics))

    make_trainer(callbacks=[Seed000()], val_data=tiny_data(samples=4)).fit()
    assert len(seen) == 2 and "val_loss" in seen[0]


@pytest.mark.parametrize("every, once, expected", [
    (2, None, [2, 4, 6]),
    (3, None, [3, 6]),
    (None, 4, [4]),
    (1, None, [1, 2, 3, 4, 5, 6]),
])
def test_filter_truth_table(every, once, expected):
    fired = []
    callbacks = CallbackList()
    callbacks.add_function("on_train_batch_end", lambda e: fired.append(e.n), every=every,
                           once=once)
    engine = Engine()
    for n in range(1, 7):
        engine.n = n
        callbacks.fire("on_train_batch_end", engine)
    assert fired == expected


def test_when_filter_combines_with_every():
    fired = []
    callbacks = CallbackList()
    callbacks.add_function("on_train_batch_end", lambda e: fired.append(e.n), every=2,
                           when=lambda e: e.n > 2)
    engine = Engine()
    for n in range(1, 9):
        engine.n = n
        callbacks.fire("on_train_batch_end", engine)
    assert fired == [4, 6, 8]


def test_filtered_object_in_callbacks_list():
    epochs = []

    class Obj(Callback):
        def on_train_epoch_start(self, trainer):
            epochs.append(trainer.epoch)

    make_trainer(epochs=5, callbacks=[filtered(Obj(), every=2)]).fit()
    assert epochs == [1, 3]


@pytest.mark.parametrize("kwargs, message", [
    (dict(every=0), "every= must be a positive integer"),
    (dict(once=-1), "once= must be a positive integer"),
    (dict(every=2, once=3), "cannot be combined"),
    (dict(when=5), "when= must be a callable"),
])
def test_bad_filters_raise_when_built(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        CallbackList().add_function("on_train_end", lambda e: None, **kwargs)


def test_unknown_event_names_the_nearest():
    with pytest.raises(ValueError, match="Did you mean on_train_epoch_end"):
        make_trainer().add_callback("on_train_epoch_ned", lambda t: None)
    with pytest.raises(ValueError, match="unknown event 'xyz'"):
        LambdaCallback(xyz=lambda t: None)


def test_method_that_looks_like_an_event_is_rejected_at_registration():
    class Typo(Callback):
        def on_val_btach_end(self, validator):
            pass

    with pytest.raises(ValueError, match="Did you mean on_val_batch_end"):
        make_trainer(callbacks=[Typo()])


def test_order_attribute_then_registration_order_and_describe():
    calls = []

    def recorder(name, order):
        class C(Callback):
            def on_train_start(self, trainer):
                calls.append(name)
        C.__name__ = name
        instance = C()
        instance.order = order
        return instance

    trainer = make_trainer(callbacks=[recorder("late", 10), recorder("first", -5),
                                      recorder("second", 0), recorder("third", 0)])
    trainer.fit()
    assert calls == ["first", "second", "third", "late"]
    text = trainer.describe_callbacks()
    assert "on_train_start: first(order=-5), second(order=0), third(order=0), late(order=10)" \
        in text


def test_dispatch_lists_hold_only_listeners_and_update_in_place():
    callbacks = CallbackList()
    batch_end = callbacks.handlers["on_train_batch_end"]

    class OnlyEpochs(Callback):
        def on_train_epoch_end(self, trainer):
            pass

    callbacks.add(OnlyEpochs())
    assert batch_end == [] and len(callbacks.handlers["on_train_epoch_end"]) == 1
    fn = callbacks.add_function("on_train_batch_end", lambda e: None)
    assert batch_end == [fn]  # the same list object an engine may hold
    callbacks.remove(fn)
    assert batch_end == []


def test_profile_reports_time_per_callback():
    trainer = make_trainer(profile=True)
    trainer.add_callback("on_train_batch_end", lambda t: sum(range(1000)))
    trainer.fit()
    assert "time per callback and event" in trainer.describe_callbacks()
    assert "<lambda> @ on_train_batch_end: 8 calls" in trainer.describe_callbacks()


def test_stop_and_stop_training_are_one_flag():
    trainer = make_trainer(epochs=5)
    trainer.add_callback("on_train_batch_end", lambda t: setattr(t, "stop_training", True))
    trainer.fit()
    assert trainer.stop is True and trainer.epoch == 0 and trainer.step == 1

    trainer = make_trainer(epochs=5)
    trainer.add_callback("on_fit_epoch_end", lambda t: setattr(t, "stop", t.epoch == 1))
    trainer.fit()
    assert trainer.stop_training is True and trainer.epoch == 1


def test_state_names_the_seeds_read_exist():
    trainer = make_trainer(val_data=tiny_data(samples=4))
    trainer.fit()
    for name in ("epoch", "metrics", "fitness", "best_fitness", "tloss", "loss_names", "args",
                 "model", "optimizer", "stop", "stop_training", "save_dir"):
        assert hasattr(trainer, name), name
    assert trainer.fitness == trainer.metrics["val_accuracy"]
    assert trainer.args.epochs == 2 and trainer.args.batch_size == 2
