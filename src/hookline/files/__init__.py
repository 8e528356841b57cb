"""Files that survive crashes: atomic writes, the checkpoint format and its background writer.

Nothing here knows the engine: these modules take bytes, tensors and plain dicts.
"""
