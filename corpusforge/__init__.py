"""corpusforge: corpora of reasoning structures, the LoRA they train, and what shifted.

The public Python API. The command line only wraps these calls.
"""

from __future__ import annotations

from ._version import __version__
from .errors import CorpusforgeError, GenerateError, HubError, PluginError, RecordError, TemplateError, TrainError
from .generate import GenerateConfig, generate
from .hub.dataset import export_corpus, load_corpus
from .hub.push import PushConfig, push_corpus
from .patterns import BUILTIN_PATTERNS, Pattern
from .records import Record, Segment, Target, build_record, content_id, structural_errors
from .stats import corpus_stats
from .templates.registry import load_registry
from .validate import ValidationReport, validate_paths

__all__ = [
    "BUILTIN_PATTERNS", "CorpusforgeError", "GenerateConfig", "GenerateError", "HubError", "Pattern",
    "PluginError", "Record", "RecordError", "Segment", "Target", "TemplateError", "TrainError",
    "PushConfig", "ValidationReport", "__version__", "build_record", "content_id", "corpus_stats",
    "export_corpus", "generate", "load_corpus", "load_registry", "push_corpus", "structural_errors",
    "validate_paths",
]
