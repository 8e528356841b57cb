"""Twin of the Ultralytics "Callbacks" page example: keep frozen layers' BatchNorm fixed.

Source: the Ultralytics docs page "Callbacks" (Korean edition), FAQ "콜백을 사용하여 Ultralytics 학습 루틴을 어떻게
사용자 지정할 수 있습니까?": ``put_in_eval_mode`` runs at ``on_train_epoch_start``, reads
``trainer.args.freeze`` and puts the BatchNorm layers of the frozen blocks in eval mode, so
their running statistics stop changing. ``freeze=N`` freezes the parameters of the first N
blocks, but BatchNorm's running mean and variance are buffers, updated in train mode anyway:
that is why the callback is needed.

A small MLP of three blocks (``fc``, ``bn``, ``act``) and a head, on scikit-learn's digits,
replaces YOLO on COCO. Difference: hookline's ``freeze=N`` freezes the first N top-level
children, so the blocks sit at the top level and are named ``"0.bn"``, ``"1.bn"``...; the
seed's YOLO names them ``"model.0.bn"``, hence ``name.split(".")[0]`` instead of ``[1]``.
The script trains twice with ``freeze=2``, without and with the callback, and reports for each
BatchNorm layer whether its running statistics changed.

Run: ``python examples/ultralytics_freeze_batchnorm.py [OUTPUT_DIR]`` (nothing is written).
"""

import argparse
import copy

import torch
from sklearn.datasets import load_digits
from torch import nn

import hookline


# Add a callback to put the frozen layers in eval mode to prevent BN values from changing
def put_in_eval_mode(trainer):
    n_layers = trainer.args.freeze
    if not isinstance(n_layers, int):
        return
    for i, (name, module) in enumerate(trainer.model.named_modules()):
        if name.endswith("bn") and int(name.split(".")[0]) < n_layers:
            module.eval()
            module.track_running_stats = False


class Block(nn.Module):
    def __init__(self, inputs, outputs):
        super().__init__()
        self.fc = nn.Linear(inputs, outputs)
        self.bn = nn.BatchNorm1d(outputs)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(self.bn(self.fc(x)))


def bn_stats(module):
    return {name: (layer.running_mean.clone(), layer.running_var.clone())
            for name, layer in module.named_modules() if isinstance(layer, nn.BatchNorm1d)}


def train_and_report(net, x, y, *, with_callback):
    before = bn_stats(net)
    model = hookline.Model(net, optimizer="adam", loss="cross_entropy")
    if with_callback:
        model.add_callback("on_train_epoch_start", put_in_eval_mode)
    model.train(x, y, epochs=2, validation_split=0.2, freeze=2, verbose=0)
    title = "with put_in_eval_mode" if with_callback else "without the callback"
    print(f"{title}:")
    for name, (mean, var) in bn_stats(net).items():
        frozen = "frozen" if int(name.split(".")[0]) < 2 else "trained"
        changed = not (torch.equal(mean, before[name][0]) and torch.equal(var, before[name][1]))
        print(f"  {name} ({frozen}): running stats {'changed' if changed else 'unchanged'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", nargs="?", help="unused: this example writes nothing")
    parser.parse_args()
    torch.manual_seed(0)  # a repeatable run
    x, y = load_digits(return_X_y=True)
    x = x.astype("float32") / 16.0

    # A small network of blocks (the seed loads YOLO26n)
    net = nn.Sequential(Block(64, 32), Block(32, 32), Block(32, 32), nn.Linear(32, 10))
    train_and_report(copy.deepcopy(net), x, y, with_callback=False)
    train_and_report(net, x, y, with_callback=True)


if __name__ == "__main__":
    main()
