"""The engines do what a hand-written loop does, with every documented option."""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

import hookline
from hookline.testing import tiny_data, tiny_model


def fit(model, **options):
    x, y = tiny_data(samples=24)
    settings = dict(loss="cross_entropy", train_data=(x, y), batch_size=8, epochs=2,
                    verbose=0, device="cpu", shuffle=False, default_callbacks=False)
    settings.update(options)
    trainer = hookline.Trainer(model, **settings)
    trainer.fit()
    return trainer


def hand_written_loop(model, x, y, *, epochs, batch_size, lr, accumulate=1, clip=None):
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    batches = (len(x) + batch_size - 1) // batch_size
    for _ in range(epochs):
        for i in range(batches):
            xb, yb = x[i * batch_size:(i + 1) * batch_size], y[i * batch_size:(i + 1) * batch_size]
            loss = nn.functional.cross_entropy(model(xb), yb)
            (loss / accumulate if accumulate > 1 else loss).backward()
            if (i + 1) % accumulate == 0 or i + 1 == batches:
                if clip:
                    nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    return model


def assert_same_weights(a, b):
    for (name, left), right in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(left, right), name


@pytest.mark.parametrize("accumulate, clip", [(1, None), (2, None), (1, 0.1)])
def test_oracle_bit_for_bit_equal_to_hand_written_loop(accumulate, clip):
    x, y = tiny_data(samples=24)
    reference = hand_written_loop(tiny_model(), x, y, epochs=2, batch_size=5, lr=0.1,
                                  accumulate=accumulate, clip=clip)
    model = tiny_model()
    fit(model, train_data=(x, y), batch_size=5,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.1), accumulate=accumulate,
        clip_grad_norm=clip)
    assert_same_weights(model, reference)


def test_data_forms_are_equivalent():
    x, y = tiny_data(samples=24)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    batches = [(x[i:i + 8], y[i:i + 8]) for i in range(0, 24, 8)]
    models = []
    for data in [(x, y), (x.numpy(), y.numpy()), loader, batches]:
        model = tiny_model()
        fit(model, train_data=data, optimizer="sgd", lr=0.1)
        models.append(model)
    for model in models[1:]:
        assert_same_weights(models[0], model)


def test_seeded_shuffle_is_reproducible_and_differs_per_epoch():
    a, b = tiny_model(), tiny_model()
    fit(a, shuffle=True, seed=3)
    fit(b, shuffle=True, seed=3)
    assert_same_weights(a, b)
    batches = hookline.data.as_batches(tiny_data(samples=24), name="t", batch_size=8,
                                       shuffle=True, seed=3)
    assert not torch.equal(batches.order(0), batches.order(1))


def test_seed_sets_the_random_state_torch_manual_seed_sets():
    """``seed=`` seeds torch as ``torch.manual_seed`` does (on a CPU-only machine hookline
    seeds the default generator directly, skipping the per-device lazy seeds)."""
    seen = {}

    class FirstDraws(hookline.Callback):
        def on_train_start(self, trainer):
            seen["draw"] = (torch.rand(4), np.random.rand(2), random.random())

    fit(tiny_model(), seed=11, callbacks=[FirstDraws()], epochs=1)
    torch.manual_seed(11)
    np.random.seed(11)
    random.seed(11)
    expected = (torch.rand(4), np.random.rand(2), random.random())
    assert torch.equal(seen["draw"][0], expected[0])
    assert np.array_equal(seen["draw"][1], expected[1])
    assert seen["draw"][2] == expected[2]


@pytest.mark.parametrize("samples, batch_size, block_batches, skip, world, drop_last, arrays", [
    (50, 4, 3, 0, 1, False, 2),   # blocks of 3 batches, a short last block and last batch
    (50, 4, 3, 5, 1, False, 2),   # resumed mid-epoch, inside the second block
    (50, 4, 1, 0, 1, True, 2),    # one batch per block, last partial batch dropped
    (51, 4, 2, 1, 2, False, 3),   # rank 1 of 2 (padded order), three arrays
    (50, 7, 100, 0, 1, False, 2),  # the whole epoch in one block
])
def test_shuffled_batches_are_the_ones_per_batch_indexing_gives(
        monkeypatch, samples, batch_size, block_batches, skip, world, drop_last, arrays):
    x = torch.randn(samples, 3)
    tensors = [x, torch.arange(samples), torch.randn(samples, 2, 2)][:arrays]
    row_bytes = sum(t[:1].numel() * t.element_size() for t in tensors)
    monkeypatch.setattr(hookline.data, "GATHER_BLOCK_BYTES", row_bytes * batch_size * block_batches)
    batches = hookline.data.ArrayBatches(tensors, batch_size=batch_size, shuffle=True, seed=5,
                                         name="t", drop_last=drop_last)
    batches.shard(world - 1, world)
    order = batches.order(2)
    if world > 1:
        per_rank = -(-samples // world)
        order = torch.cat([order, order[:per_rank * world - samples]])[world - 1::world]
    stop = len(order) - (len(order) % batch_size if drop_last else 0)
    expected = [tuple(t[order[i:i + batch_size]] for t in tensors)
                for i in range(skip * batch_size, stop, batch_size)]
    got = list(batches.epoch(2, skip))
    assert len(got) == len(expected) == len(batches) - skip
    for got_batch, expected_batch in zip(got, expected):
        for left, right in zip(got_batch, expected_batch, strict=True):
            assert left.is_contiguous() and torch.equal(left, right)


@pytest.mark.parametrize("samples, batch_size, block_batches, skip, drop_last", [
    (50, 4, 3, 0, False),    # blocks of 3 batches, a short last block and last batch
    (50, 4, 3, 5, False),    # resumed mid-epoch, inside the second block
    (50, 4, 1, 0, True),     # one batch per block, the short last batch dropped
    (50, 4, 100, 13, False),  # resumed after the last batch: nothing left
    (3, 4, 100, 0, True),    # fewer samples than a batch, dropped: no batch at all
])
def test_unshuffled_batches_are_the_ones_slicing_gives(
        monkeypatch, samples, batch_size, block_batches, skip, drop_last):
    tensors = [torch.randn(samples, 3), torch.arange(samples)]
    row_bytes = sum(t[:1].numel() * t.element_size() for t in tensors)
    monkeypatch.setattr(hookline.data, "GATHER_BLOCK_BYTES", row_bytes * batch_size * block_batches)
    batches = hookline.data.ArrayBatches(tensors, batch_size=batch_size, shuffle=False, seed=5,
                                         name="t", drop_last=drop_last)
    stop = samples - (samples % batch_size if drop_last else 0)
    expected = [tuple(t[i:i + batch_size] for t in tensors)
                for i in range(skip * batch_size, stop, batch_size)]
    got = list(batches.epoch(0, skip))
    assert len(got) == len(expected) == max(len(batches) - skip, 0)
    for got_batch, expected_batch in zip(got, expected):
        for left, right in zip(got_batch, expected_batch, strict=True):
            assert torch.equal(left, right)


def test_training_reduces_loss_and_reports_metrics():
    x, y = tiny_data(samples=96)
    trainer = fit(tiny_model(), train_data=(x, y), val_data=(x, y), epochs=15, lr=0.05)
    assert trainer.metrics["val_accuracy"] > 0.7
    assert trainer.metrics["loss"] < 1.0
    assert trainer.best_fitness >= trainer.fitness


def test_train_metrics_and_user_metrics_with_val_prefix():
    def top2(preds, targets):
        return (preds.topk(2, dim=1).indices == targets[:, None]).any(dim=1).float().mean()

    x, y = tiny_data(samples=24)
    trainer = fit(tiny_model(), val_data=(x, y), metrics=["accuracy", top2],
                  train_metrics=True)
    assert set(trainer.metrics) == {"loss", "accuracy", "top2", "val_loss", "val_accuracy",
                                    "val_top2"}
    assert trainer.metrics["val_top2"] >= trainer.metrics["val_accuracy"]


def test_a_metric_may_return_a_numpy_or_python_number():
    def as_numpy(preds, targets):  # a metric written with numpy, as Keras code has them
        return np.float64((preds.argmax(1) == targets).float().mean().item())

    def as_float(preds, targets):
        return (preds.argmax(1) == targets).float().mean().item()

    x, y = tiny_data(samples=24)
    trainer = fit(tiny_model(), val_data=(x, y), metrics=["accuracy", as_numpy, as_float],
                  train_metrics=True)
    for prefix in ("", "val_"):
        assert trainer.metrics[f"{prefix}as_numpy"] == \
            pytest.approx(trainer.metrics[f"{prefix}accuracy"])
        assert trainer.metrics[f"{prefix}as_float"] == \
            pytest.approx(trainer.metrics[f"{prefix}accuracy"])


def test_a_metric_returning_something_else_is_an_error_naming_it():
    def as_text(preds, targets):
        return "high"

    x, y = tiny_data(samples=24)
    with pytest.raises(TypeError, match=r"metric 'as_text' returned a str \('high'\) for a "
                                        r"batch; a metric returns one number: a 0-d tensor"):
        fit(tiny_model(), val_data=(x, y), metrics=[as_text])


def test_torchmetrics_metric_is_accepted():
    torchmetrics = pytest.importorskip("torchmetrics")
    x, y = tiny_data(samples=24)
    metric = torchmetrics.classification.MulticlassAccuracy(num_classes=3, average="micro")
    trainer = fit(tiny_model(), val_data=(x, y), metrics=[metric])
    plain = fit(tiny_model(), val_data=(x, y), metrics=["accuracy"])
    assert trainer.metrics["val_multiclass_accuracy"] == pytest.approx(
        plain.metrics["val_accuracy"])


def test_a_per_class_metric_and_a_metric_collection_log_one_value_per_entry():
    """A per-class tensor logs name_0, name_1, ...; a MetricCollection one value per key. Both
    failed after a whole epoch trained, with a bare float() error."""
    from torchmetrics import MetricCollection
    from torchmetrics.classification import MulticlassAccuracy, MulticlassPrecision
    x, y = tiny_data(samples=24)
    collection = MetricCollection({"top1": MulticlassAccuracy(num_classes=3, average="micro"),
                                   "precision": MulticlassPrecision(num_classes=3)},
                                  prefix="c_")
    trainer = fit(tiny_model(), val_data=(x, y), train_metrics=True, metrics=[
        MulticlassAccuracy(num_classes=3, average=None), collection])
    with torch.no_grad():
        predicted = trainer.model(x).argmax(1)
    hits = (predicted == y).float()
    by_class = [hits[y == c].mean().item() for c in range(3)]
    precision = np.mean([hits[predicted == c].mean().item() if (predicted == c).any() else 0.0
                         for c in range(3)])
    logged = trainer.metrics
    assert [logged[f"val_multiclass_accuracy_{c}"] for c in range(3)] == pytest.approx(by_class)
    assert logged["val_c_top1"] == pytest.approx(hits.mean().item())
    assert logged["val_c_precision"] == pytest.approx(precision)
    assert {"multiclass_accuracy_0", "c_top1", "c_precision"} <= set(logged)  # training's


_UNLOGGABLE = [
    ("confusion_matrix", TypeError,
     (r"metric 'multiclass_confusion_matrix' computes a tensor of shape \(3, 3\), which "
      r"cannot be logged; .* a 1-d tensor \(logged as multiclass_confusion_matrix_0, .*reduce "
      r"it in a subclass's compute\(\)")),
    ("collection_key_loss", ValueError,
     r"metrics would log \['loss'\] twice \(or over the loss\)")]


@pytest.mark.parametrize("train_metrics", [False, True])
@pytest.mark.parametrize(("metric", "error", "message"), _UNLOGGABLE)
def test_a_metric_result_that_cannot_be_logged_is_refused_at_the_first_batch(
        metric, error, message, train_metrics):
    """A matrix, or a collection key that takes the loss's name, is refused at the first
    training batch, validation's metrics included, naming the metric and the fix."""
    from torchmetrics import MetricCollection
    from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix
    metric = MulticlassConfusionMatrix(num_classes=3) if metric == "confusion_matrix" else \
        MetricCollection({"loss": MulticlassAccuracy(num_classes=3)})
    x, y = tiny_data(samples=24)
    trained = []
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               val_data=(x, y), metrics=[metric], train_metrics=train_metrics,
                               batch_size=8, verbose=0, device="cpu", default_callbacks=False)
    trainer.add_callback("on_train_batch_end", lambda t: trained.append(t.batch_i))
    with pytest.raises(error, match=message):
        trainer.fit()
    assert trained == []


def test_torchmetrics_objects_follow_the_model_to_its_device_with_a_copy_for_training():
    from torchmetrics.classification import MulticlassAccuracy

    class Recording(MulticlassAccuracy):
        def to(self, *args, **kwargs):
            moves.append((id(self), torch.device(args[0])))
            return super().to(*args, **kwargs)
    moves: list = []
    metric = Recording(num_classes=3, average="micro")
    x, y = tiny_data(samples=24)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               val_data=(x, y), metrics=[metric], train_metrics=True,
                               batch_size=8, epochs=1, device="cpu", verbose=0)
    trainer.fit()
    train_copy = trainer.train_metric_set.metrics[0][1]
    assert train_copy is not metric  # training and validation never share a state
    assert (id(train_copy), torch.device("cpu")) in moves
    assert (id(metric), torch.device("cpu")) in moves


def test_a_metric_is_named_after_its_class_with_acronyms_whole():
    from torchmetrics.classification import BinaryF1Score, MulticlassAUROC
    from torchmetrics.regression import R2Score

    from hookline.metrics import resolve_metrics
    names = [name for name, _ in resolve_metrics(
        [MulticlassAUROC(num_classes=3), BinaryF1Score(), R2Score()], "cross_entropy")]
    assert names == ["multiclass_auroc", "binary_f1_score", "r2_score"]


@pytest.mark.parametrize("loss, threshold, head", [
    ("bce", 0.5, nn.Sigmoid()), ("binary_crossentropy", 0.5, nn.Sigmoid()),
    ("bce_with_logits", 0.0, nn.Identity())])
def test_accuracy_with_a_binary_loss_by_name_thresholds_every_label(loss, threshold, head):
    """"accuracy" thresholded one output at 0 (a logit, wrong for "bce"'s probabilities) and
    took the arg-max of several, so a multi-label target (N, C) failed to compare."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=generator)
    y = (x[:, :3] + 0.5 * torch.randn(40, 3, generator=generator) > 0).float()
    weight = torch.rand(40, generator=generator)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), head)
    trainer = fit(net, loss=loss, train_data=(x, y), val_data=(x, y, weight), epochs=3,
                  lr=0.1, metrics=["accuracy"], weighted_metrics=["accuracy"])
    with torch.no_grad():
        hits = ((net(x) > threshold).float() == y).float()
    assert trainer.metrics["val_accuracy"] == pytest.approx(hits.mean().item())
    by_sample = (hits.mean(1) * weight).sum() / weight.sum()
    assert trainer.metrics["val_weighted_accuracy"] == pytest.approx(by_sample.item())


def test_binary_accuracy_by_name_and_the_auto_metric_of_a_binary_loss():
    """Keras' "binary_accuracy" (threshold 0.5) serves a loss module such as nn.BCELoss, and
    metrics="auto" (the default) gives a binary cross entropy by name its binary accuracy
    (before: no metric at all)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=generator)
    y = (x[:, :1] > 0).float()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 1), nn.Sigmoid())
    trainer = fit(net, loss=nn.BCELoss(), train_data=(x, y), val_data=(x, y), epochs=3,
                  lr=0.1, metrics=["binary_accuracy"])
    with torch.no_grad():
        expected = ((net(x) > 0.5).float() == y).float().mean().item()
    assert trainer.metrics["val_binary_accuracy"] == pytest.approx(expected)
    by_default = fit(nn.Sequential(nn.Linear(4, 1), nn.Sigmoid()), loss="bce",
                     train_data=(x, y), val_data=(x, y), epochs=1)
    with torch.no_grad():
        expected = ((by_default.model(x) > 0.5).float() == y).float().mean().item()
    assert by_default.metrics["val_accuracy"] == pytest.approx(expected)


def test_accuracy_keeps_its_rule_with_other_losses_and_loss_callables():
    from hookline.metrics import accuracy, resolve_loss, resolve_metrics
    for loss in ["cross_entropy", "mse", nn.BCELoss(), nn.functional.binary_cross_entropy,
                 resolve_loss("cross_entropy"), None]:
        assert resolve_metrics(["accuracy", "acc"], loss) == [("accuracy", accuracy),
                                                               ("acc", accuracy)]


def test_accuracy_of_a_sequence_reads_the_class_dimension_cross_entropy_reads():
    """torch's sequence layout (N, C, T) logits against (N, T) classes, as
    loss="cross_entropy" takes them, and Hugging Face's (N, T, C): both count each position
    (before: the (N, C, T) arg-max ran over T, a crash, or a wrong share where T == C)."""
    from hookline.metrics import accuracy
    torch.manual_seed(0)
    logits, classes = torch.randn(4, 3, 5), torch.randint(0, 3, (4, 5))  # N=4, C=3, T=5
    expected = (logits.argmax(1) == classes).float().mean()
    assert accuracy(logits, classes) == expected
    assert accuracy(logits.transpose(1, 2), classes) == expected
    x, y = torch.randn(12, 5, 2), torch.randint(0, 3, (12, 5))
    model = nn.Sequential(nn.Linear(2, 3), Transpose())  # (N, T, 2) -> (N, 3, T)
    metrics = hookline.Validator(model, data=(x, y), loss="cross_entropy",
                                 metrics=["accuracy"]).validate()
    with torch.no_grad():
        assert metrics["accuracy"] == pytest.approx(float((model(x).argmax(1) == y).float()
                                                          .mean()))


class Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(1, 2)


@pytest.mark.parametrize("batch_size", [3, 8])
def test_accuracy_reads_one_hot_and_probability_targets_by_their_arg_max(batch_size):
    """Keras' categorical accuracy: the arg-max class of each (N, C) float target row. The
    predicted classes (N,) were compared with the rows by broadcasting: a wrong share when
    the batch size equals the class count (3), a shape error otherwise (8)."""
    x, labels = tiny_data(samples=24)
    generator = torch.Generator().manual_seed(0)
    soft = torch.softmax(3 * torch.randn(24, 3, generator=generator), 1)
    soft[torch.arange(24), labels] += 2.0  # each row's arg-max is its label
    weight = torch.rand(24, generator=generator)
    for target in (nn.functional.one_hot(labels, 3).float(), soft / soft.sum(1, keepdim=True)):
        net = tiny_model()
        trainer = fit(net, loss="categorical_crossentropy", train_data=(x, target),
                      val_data=(x, target, weight), batch_size=batch_size, epochs=1,
                      metrics=["accuracy"], weighted_metrics=["accuracy"])
        with torch.no_grad():
            hits = (net(x).argmax(1) == labels).float()
        assert trainer.metrics["val_accuracy"] == pytest.approx(hits.mean().item())
        assert trainer.metrics["val_weighted_accuracy"] == pytest.approx(
            ((hits * weight).sum() / weight.sum()).item())


def test_bf16_autocast_runs_on_cpu():
    seen = []
    x, y = tiny_data(samples=16)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               precision="bf16", device="cpu", verbose=0, batch_size=8)
    trainer.add_callback("on_after_forward", lambda t: seen.append(t.preds.dtype))
    trainer.fit()
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_fp16_gradients_at_optimizer_step_are_unscaled_as_lightning_shows_them():
    """A gradient-norm callback ported from Lightning's on_before_optimizer_step reads the
    same gradients under fp16 as in full precision (before: 65536 times larger, scaled)."""
    x, y = torch.randn(8, 4) * 0.01, torch.randn(8, 1) * 0.01
    norms: dict[str, list[float]] = {}
    for precision in ("32", "fp16"):
        torch.manual_seed(0)
        model = nn.Linear(4, 1)
        trainer = hookline.Trainer(model, loss="mse", optimizer="sgd", lr=0.0,
                                   train_data=(x, y), batch_size=8, epochs=2, verbose=0,
                                   precision=precision, device="cpu")
        trainer.add_callback("optimizer_step", lambda t, p=precision: norms.setdefault(
            p, []).append(float(t.model.weight.grad.norm())))
        trainer.fit()
    assert trainer.scaler is not None and trainer.scaler.get_scale() > 1
    assert norms["fp16"] == pytest.approx(norms["32"], rel=1e-2)


def test_freeze_first_children():
    model = tiny_model()
    before = copy.deepcopy(model)
    trainer = fit(model, freeze=1, lr=0.5, optimizer="sgd")
    assert torch.equal(model[0].weight, before[0].weight)
    assert not torch.equal(model[2].weight, before[2].weight)
    assert trainer.args.freeze == 1


class _Named(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.backbone(x))


def _changed(model, **options):
    before = copy.deepcopy(model.state_dict())
    fit(model, lr=0.5, optimizer="sgd", **options)
    return sorted(name for name, value in model.state_dict().items()
                  if not torch.equal(value, before[name]))


def test_freeze_takes_child_indexes_and_name_prefixes():
    # Ultralytics' list of layer indexes: the children at those positions, as freeze=n counts
    assert _changed(tiny_model(), freeze=[0]) == ["2.bias", "2.weight"]
    assert _changed(_Named(), freeze=[1]) == ["backbone.0.bias", "backbone.0.weight"]
    assert _changed(_Named(), freeze=[0, "head.bias"]) == ["head.weight"]
    assert _changed(_Named(), freeze="backbone") == ["head.bias", "head.weight"]


@pytest.mark.parametrize(("freeze", "message"), [
    (["backbon"], (r"freeze='backbon' matches no parameter or submodule of the model; did you "
                   r"mean 'backbone'.*top-level children are backbone, head")),
    (["head.wieght"], r"did you mean 'head.weight'"),
    ([2], (r"freeze=2 is no index of the model's top-level children: it has 2 "
           r"\(backbone, head\); give an index from 0 to 1")),
])
def test_a_freeze_entry_that_matches_nothing_names_the_valid_ones(freeze, message):
    with pytest.raises(ValueError, match=message):
        fit(_Named(), freeze=freeze)


@pytest.mark.parametrize(("freeze", "error", "message"), [
    (-1, ValueError, r"freeze=-1 must count from 0 to 1"),  # was: all but the last child
    (2, ValueError, r"freeze=2 must count from 0 to 1.*leaves nothing to train"),
    (True, TypeError, r"freeze=True is not a number of blocks"),  # was: the first child
    (["backbone", "head"], ValueError, r"freezes every trainable parameter"),  # torch's error
])
def test_a_freeze_that_counts_wrong_or_leaves_nothing_to_train_is_refused(freeze, error,
                                                                         message):
    with pytest.raises(error, match=message):
        fit(_Named(), freeze=freeze)


def test_save_dir_writes_last_and_best_and_fires_on_model_save(tmp_path):
    saves = []
    x, y = tiny_data(samples=24)
    trainer = hookline.Trainer(tiny_model(), loss="cross_entropy", train_data=(x, y),
                               val_data=(x, y), epochs=3, verbose=0, save_dir=tmp_path,
                               device="cpu")
    trainer.add_callback("on_model_save", lambda t: saves.append(
        (t.epoch, t.last_checkpoint.name, t.best_fitness)))
    trainer.fit()
    assert [s[0] for s in saves] == [0, 1, 2]
    assert (tmp_path / "weights" / "last.pt").is_file()
    best = hookline.checkpoint.load_weights(tmp_path / "weights" / "best.pt")
    assert best["fitness"] == trainer.best_fitness


def test_a_nan_fitness_is_never_the_best(tmp_path):
    """A first epoch whose fitness is NaN must not become a best that nothing beats."""
    values = [float("nan"), 0.5, 0.9, float("nan")]
    seen = []
    callback = hookline.LambdaCallback(
        on_train_epoch_end=lambda t: t.metrics.update(val_accuracy=values[t.epoch]),
        on_fit_epoch_end=lambda t: seen.append(t.best_fitness))
    trainer = fit(tiny_model(), epochs=4, save_dir=tmp_path, fitness="val_accuracy",
                  callbacks=[callback])
    assert seen == [None, 0.5, 0.9, 0.9]
    best = hookline.checkpoint.load_weights(tmp_path / "weights" / "best.pt")
    assert best["epoch"] == 2 and best["best_fitness"] == 0.9 == trainer.best_fitness


@pytest.mark.parametrize("name", ["val_mae", "val_mse", "val_perplexity"])
def test_a_fitness_whose_name_says_it_should_fall_ranks_its_lowest_value_best(tmp_path, name):
    """fitness="val_mae" reads as the monitors' mode="auto" does: a lower MAE is better, so
    weights/best.pt holds the epoch of the lowest value, not the highest."""
    values = [0.9, 0.4, 0.6, 0.7]
    callback = hookline.LambdaCallback(
        on_train_epoch_end=lambda t: t.metrics.update({name: values[t.epoch]}))
    trainer = fit(tiny_model(), epochs=4, save_dir=tmp_path, fitness=name, callbacks=[callback])
    best = hookline.checkpoint.load_weights(tmp_path / "weights" / "best.pt")
    assert best["epoch"] == 1 and trainer.best_fitness == -0.4


def test_clipping_by_norm_covers_the_parameters_the_optimizer_steps():
    """One optimizer over the head only: the backbone's gradients (which nothing steps) do not
    enter the norm, as in Lightning and the multi-optimizer path; before, they shrank the
    head's update."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 8) * 10, torch.randint(0, 3, (32,))
    model = tiny_model()
    reference = copy.deepcopy(model)
    head = list(model.children())[-1]
    fit(model, optimizer=torch.optim.SGD(head.parameters(), lr=0.1), train_data=(x, y),
        batch_size=32, epochs=1, clip_grad_norm=0.05)
    reference_head = list(reference.children())[-1]
    optimizer = torch.optim.SGD(reference_head.parameters(), lr=0.1)
    nn.functional.cross_entropy(reference(x), y).backward()
    nn.utils.clip_grad_norm_(reference_head.parameters(), 0.05)
    optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), reference.parameters()))


def test_a_submodule_frozen_in_eval_stays_in_eval_through_training_validation_and_predict():
    """backbone.eval() before fit: its BatchNorm statistics stay as they were through training
    epochs, validation (mid-epoch too), predict and export, while the head trains in training
    mode; a model handed over wholly in eval mode (as from_pretrained returns one) trains."""
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Linear(8, 8), nn.BatchNorm1d(8), nn.ReLU())
    head = nn.Sequential(nn.Dropout(0.1), nn.Linear(8, 3))
    model = nn.Sequential(backbone, head)
    backbone.eval()
    statistics = backbone[1].running_mean.clone()
    x, y = torch.randn(48, 8) * 3 + 1, torch.randint(0, 3, (48,))
    modes = []
    record = hookline.LambdaCallback(on_train_batch_start=lambda t: modes.append(
        (backbone.training, backbone[1].training, head.training, model.training)))
    trainer = fit(model, train_data=(x, y), val_data=(x, y), val_check_interval=2, epochs=2,
                  callbacks=[record])
    trainer.predict(x)
    assert set(modes) == {(False, False, True, True)} and len(modes) == 12
    assert torch.equal(backbone[1].running_mean, statistics)
    assert not backbone.training and not backbone[1].training and head.training

    whole = tiny_model().eval()
    seen = []
    fit(whole, callbacks=[hookline.LambdaCallback(
        on_train_batch_start=lambda t: seen.append(all(m.training for m in whole.modules())))])
    assert seen and all(seen)


def test_steps_per_epoch_and_initial_epoch():
    trainer = fit(tiny_model(), epochs=4, initial_epoch=2, steps_per_epoch=2)
    assert trainer.step == 4 and trainer.epoch == 3


def test_a_model_already_on_the_device_is_not_moved_again_but_one_elsewhere_is(monkeypatch):
    """``Module.to`` visits every module even when nothing moves (1.2 ms a fit for a 12-layer
    transformer): fit, validate and predict skip it for a model already there, and still make
    the call for a tensor elsewhere or a module with its own ``_apply``."""
    from hookline.engine.base import place_model

    moved = []
    to = nn.Module.to
    monkeypatch.setattr(nn.Module, "to", lambda self, *args, **kwargs: (
        moved.append(self), to(self, *args, **kwargs))[1])
    model = tiny_model()
    x, y = tiny_data(samples=16)
    trainer = fit(model, val_data=(x, y))
    trainer.validate()
    trainer.predict(x)
    assert not [module for module in moved if module is model]

    model.register_buffer("elsewhere", torch.zeros(1, device="meta"))
    with pytest.raises(NotImplementedError):  # moving a meta tensor: so the call was made
        place_model(model, torch.device("cpu"))
    assert moved[-1] is model

    applied = []

    class OwnApply(nn.Linear):  # as an RNN or a torchmetrics metric: more than its tensors
        def _apply(self, fn, recurse=True):
            applied.append(self)
            return super()._apply(fn, recurse)

    nested = nn.Sequential(nn.Linear(2, 2), OwnApply(2, 2))
    place_model(nested, torch.device("cpu"))
    assert applied == [nested[1]]


def test_trainer_predict_takes_its_own_batch_size_and_refuses_what_it_fixes():
    """predict(x, batch_size=8) batches by 8 (the trainer's batch_size is the default), where
    Python's "got multiple values" TypeError came before; the model, callbacks and device are
    the trainer's, and a clear error says so."""
    trainer = fit(tiny_model(), batch_size=4)
    x = torch.randn(20, 8)
    sizes = []
    trainer.add_callback("on_predict_batch_end", lambda p: sizes.append(len(p.batch[0])))
    assert len(trainer.predict(x, batch_size=8)) == 20 and sizes == [8, 8, 4]
    sizes.clear()
    trainer.predict(x)
    assert sizes == [4] * 5
    with pytest.raises(TypeError, match=r"takes no device.*trainer's own model"):
        trainer.predict(x, device="cpu")


def test_predictor_stream_and_replaceable_results():
    model = tiny_model()
    x = torch.randn(5, 8)
    predictor = hookline.Predictor(model, batch_size=2, device="cpu")

    def zip_frames(predictor):
        predictor.results = zip(predictor.results, predictor.batch[0])

    predictor.add_callback("on_predict_batch_end", zip_frames)
    stream = predictor(x, stream=True)
    assert iter(stream) is stream  # a generator: results come batch by batch
    pairs = list(stream)
    assert len(pairs) == 5
    for result, frame in pairs:
        assert torch.equal(frame, x[result.index])
        assert torch.allclose(result.output, model(frame[None])[0].detach(), atol=1e-6)


def test_predictor_saves_only_batches_flagged_by_callbacks(tmp_path):
    predictor = hookline.Predictor(tiny_model(), batch_size=2, device="cpu", save=True,
                                   save_dir=tmp_path)
    predictor.add_callback("on_predict_postprocess_end",
                           lambda p: setattr(p.args, "save", p.batch_i != 1))
    results = predictor(torch.randn(6, 8))
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0] == "index,cls,conf"
    assert [int(r.split(",")[0]) for r in rows[1:]] == [0, 1, 4, 5]
    by_index = {result.index: result.cls for result in results}
    assert all(by_index[int(row.split(",")[0])] == int(row.split(",")[1]) for row in rows[1:])


def test_trainer_predict_save_writes_to_the_trainers_save_dir_and_no_folder_is_an_error(
        tmp_path):
    """predict(save=True) on a trainer with a save_dir writes predictions.csv there (before:
    nothing, silently); with no folder anywhere it is an error naming save_dir=. (A callback
    that turns args.save on per batch saves only where the predict has a folder.)"""
    trainer = fit(tiny_model(), save_dir=tmp_path / "run")
    x = torch.randn(6, 8)
    trainer.predict(x, save=True)
    rows = (tmp_path / "run" / "predictions.csv").read_text().splitlines()
    assert len(rows) == 7 and rows[0] == "index,cls,conf"
    with pytest.raises(ValueError, match="save=True needs save_dir="):
        fit(tiny_model()).predict(x, save=True)


@pytest.mark.parametrize("fmt", ["pt", "safetensors", "torchscript", "onnx"])
def test_export_formats_round_trip(tmp_path, fmt):
    model = tiny_model().eval()
    x = torch.randn(4, 8)
    file = hookline.Exporter(model, format=fmt, file=tmp_path / f"model.{fmt}",
                             example_input=x[:1]).export()
    expected = model(x).detach().numpy()
    if fmt == "pt":
        loaded = tiny_model(seed=9)
        loaded.load_state_dict(hookline.checkpoint.load_weights(file)["model"])
        actual = loaded(x).detach().numpy()
    elif fmt == "safetensors":
        from safetensors.torch import load_model
        loaded = tiny_model(seed=9)
        load_model(loaded, str(file))
        actual = loaded(x).detach().numpy()
    elif fmt == "torchscript":
        actual = torch.jit.load(str(file))(x).detach().numpy()
    else:
        import onnxruntime
        session = onnxruntime.InferenceSession(str(file), providers=["CPUExecutionProvider"])
        actual = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob("*.tmp"))  # written atomically


def test_export_check_catches_a_model_that_does_not_trace(tmp_path):
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(8, 3)

        def forward(self, x):
            return self.linear(x) * (2.0 if float(x.sum()) > 0 else -1.0)

    x = torch.ones(1, 8)
    exporter = hookline.Exporter(DataDependent(), format="torchscript",
                                 file=tmp_path / "m.ts", example_input=x)
    exporter.export()  # the traced example agrees with itself
    assert exporter.max_abs_diff == 0.0
    exporter.example_input = -x  # checking on another input exposes the frozen branch
    with pytest.raises(RuntimeError, match="disagrees with the PyTorch model"):
        exporter._check()
