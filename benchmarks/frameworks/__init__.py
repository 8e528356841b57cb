"""One module per framework, each with ``build(spec) -> fit`` (see ``spec.py``).

``build`` does the untimed setup (model, optimizer, trainer object, callbacks); the returned
``fit()`` runs the whole training and returns the number of optimizer steps it took, read back
from the framework's own state so a run that stopped early cannot pass unnoticed.
"""

# name -> (module, python import the cold-import figure measures, variants it runs)
FRAMEWORKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "raw": ("frameworks.raw", "torch", ("bare", "typical")),
    "naive-logging": ("frameworks.naive", "torch", ("typical",)),
    "hookline": ("frameworks.hookline_bench", "hookline",
                 ("bare", "typical", "custom-step", "dict-batch")),
    "lightning": ("frameworks.lightning_bench", "pytorch_lightning", ("bare", "typical")),
    "keras": ("frameworks.keras_bench", "keras", ("bare", "typical")),
    "ignite": ("frameworks.ignite_bench", "ignite.engine, ignite.handlers, ignite.metrics",
               ("bare", "typical")),
}

PEERS = ("lightning", "keras", "ignite")
