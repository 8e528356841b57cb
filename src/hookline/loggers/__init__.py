"""Integrations with tracking tools; each imports its library lazily (install the extra)."""

__all__: list[str] = []
