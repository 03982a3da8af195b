"""How a series job ends when it does not export: the reasons its manifest records."""

from __future__ import annotations



class SeriesFailed(RuntimeError):
    pass

class NotExported(RuntimeError):
    """What the images are has no place in the dataset (the report says why)."""
