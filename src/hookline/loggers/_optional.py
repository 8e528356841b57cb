"""Import an optional library at the moment it is needed, naming the extra that installs it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``; when it is missing, raise ImportError saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{feature} needs the {module.split('.')[0]} package, which is not "
                          f"installed: pip install 'hookline[{extra}]'") from error
