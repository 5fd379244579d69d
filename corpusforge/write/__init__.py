"""Model-written corpora: the templates force the structure, a model writes the words (``write_corpus``)."""

from .run import WriteConfig, WriteResult, write_corpus

__all__ = ["WriteConfig", "WriteResult", "write_corpus"]
