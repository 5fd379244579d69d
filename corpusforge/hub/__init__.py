"""Hugging Face: corpora as ``datasets``, dataset cards, and pushing to the Hub.

Everything here imports ``datasets`` / ``huggingface_hub`` lazily, inside the
functions, so the rest of corpusforge starts fast.
"""

from .dataset import export_corpus, load_corpus

__all__ = ["export_corpus", "load_corpus"]
