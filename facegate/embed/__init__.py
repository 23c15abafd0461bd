"""Embedders behind one interface; ``get_embedder`` picks the implementation a model's spec names.

Adding an embedder is one :class:`~facegate.models.registry.ModelSpec` entry (template, input
size, preprocessing, licence, provenance); a new network format adds one
:class:`~facegate.embed.base.Embedder` subclass and its line in ``factory.IMPLEMENTATIONS``.
"""

from facegate.embed.base import Embedder
from facegate.embed.factory import IMPLEMENTATIONS, get_embedder

__all__ = ["Embedder", "IMPLEMENTATIONS", "get_embedder"]
