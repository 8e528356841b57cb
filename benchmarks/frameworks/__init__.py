"""One module per framework, each with ``build(spec) -> fit`` (see ``spec.py``).

``build`` does the untimed setup (model, optimizer, trainer object, callbacks); the returned
``fit()`` runs the whole training and returns the number of optimizer steps it took, read back
from the framework's own state so a run that stopped early cannot pass unnoticed. Every
``build`` handles the four workload kinds (``workloads.py``) and a ``spec.task.val`` of None.
"""

# name -> (module, python import the cold-import figure measures, variants it runs); a
# workload runs the variants both it (Workload.variants) and the framework have.
FRAMEWORKS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "raw": ("frameworks.raw", "torch", ("bare", "typical")),
    "naive-logging": ("frameworks.naive", "torch", ("typical",)),
    "hookline": ("frameworks.hookline_bench", "hookline", ("bare", "typical", "arrays")),
    "lightning": ("frameworks.lightning_bench", "pytorch_lightning", ("bare", "typical")),
    "keras": ("frameworks.keras_bench", "keras", ("bare", "typical")),
    "ignite": ("frameworks.ignite_bench", "ignite.engine, ignite.handlers, ignite.metrics",
               ("bare", "typical")),
}

PEERS = ("lightning", "keras", "ignite")
