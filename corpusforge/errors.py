"""The errors corpusforge raises on bad input.

Every error a user can cause is a ``CorpusforgeError``: it carries a message a
person can act on and, where it has one, the place (file, line, field) it
comes from. The CLI turns them into a one-line message and exit code 1; no
traceback ever reaches the user for these.
"""

from __future__ import annotations


class CorpusforgeError(Exception):
    """Base class: a problem with the user's input, not a bug in corpusforge."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, hint: str | None = None):
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = str(self.file)
            if self.line is not None:
                where += f":{self.line}"
        if self.field:
            where = f"{where} {self.field}" if where else self.field
        text = f"{where}: {self.message}" if where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class RecordError(CorpusforgeError):
    """A record or corpus file that does not meet the record contract."""


class TemplateError(CorpusforgeError):
    """A template or pack that cannot be loaded or rendered."""


class PluginError(CorpusforgeError):
    """A plugin that cannot be loaded, or a name clash between sources."""


class GenerateError(CorpusforgeError):
    """A generation request that cannot be fulfilled (bad options, space too small)."""


class HubError(CorpusforgeError):
    """A failure talking to the Hugging Face Hub."""


class TrainError(CorpusforgeError):
    """A training configuration or run that cannot proceed."""


class ModelError(TrainError):
    """A model that cannot be found, loaded or placed (a TrainError, so that training code catches it too)."""


class ProbeError(CorpusforgeError):
    """A probe or control file that cannot be used."""


class ReportError(CorpusforgeError):
    """A report that cannot be made from these inputs."""


def already_exists(out, error: type[CorpusforgeError] = CorpusforgeError) -> CorpusforgeError:
    """The one message for an output that exists and may not be replaced."""
    return error(f"{out} already exists", hint="pass --overwrite to replace it, or choose another --out")
