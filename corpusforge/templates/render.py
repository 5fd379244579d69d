"""Rendering template strings: a sandboxed Jinja environment, and a fast path.

Templates are untrusted input (users install other people's packs), so every
string is parsed by Jinja2's ``ImmutableSandboxedEnvironment`` with
``StrictUndefined``: a missing slot is an error, never an empty string, and
``{{ ''.__class__ }}`` is refused.

The fast path: most template strings are plain text with ``{{ slot }}``,
``{{ slot.form }}`` and ``{{ slot | filter }}`` expressions. Each such
expression depends on one slot value only, so its output for every value of
the slot is computed once, through the same sandbox, when the template loads;
rendering a record is then a join of precomputed strings. Strings that use
anything else (``{% if %}``, arithmetic, filters with arguments) render through
the sandbox for every record. Both give the same text — a test checks it on
every built-in template.
"""

from __future__ import annotations

import functools
import re
import signal
import threading
import time
from contextlib import contextmanager
from typing import Sequence

import jinja2
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Limits on one render of one template string (templates come from strangers).
MAX_NUMBER = 100_000          # an integer argument, repeat count, exponent or format width
MAX_RANGE = 10_000            # items of one range()
MAX_OUTPUT = 100_000          # characters one string may render to
MAX_SECONDS = 2.0             # wall time of one sandboxed render


class RenderLimitError(Exception):
    """A render went past one of the limits above (the message names it)."""


class Word(str):
    """A slot value: a string that may carry named forms (``{{ subject.gen }}``).

    Russian needs word forms (case, gender agreement); a slot value written as
    ``{value: река, gen: реки, gender: f}`` renders as ``река`` and offers
    ``.gen`` and ``.gender`` to the template.
    """

    __slots__ = ("forms", "plain")

    def __new__(cls, value: str, forms: dict[str, str] | None = None):
        obj = super().__new__(cls, value)
        obj.forms = forms or {}
        obj.plain = str(value)  # the value as a plain str (for records and JSON)
        return obj

    def __getattr__(self, name: str):
        forms = object.__getattribute__(self, "forms")
        if name in forms:
            return forms[name]
        raise AttributeError(name)


_VOWEL_SOUND_EXCEPTIONS = ("hour", "honest", "honour", "honor", "heir")
_CONSONANT_SOUND_EXCEPTIONS = ("uni", "use", "usu", "euro", "eu", "one", "once", "ur")


def with_article(phrase: str) -> str:
    """English indefinite article: ``question`` → ``a question``, ``idea`` → ``an idea``."""
    word = phrase.lstrip().lower()
    if word.startswith(_VOWEL_SOUND_EXCEPTIONS):
        article = "an"
    elif word.startswith(_CONSONANT_SOUND_EXCEPTIONS):
        article = "a"
    else:
        article = "an" if word[:1] in "aeiou" else "a"
    return f"{article} {phrase}"


def capfirst(value: str) -> str:
    """Upper-case the first character only (``the river`` → ``The river``; ``река`` → ``Река``)."""
    return value[:1].upper() + value[1:]


def _check_numbers(values) -> None:
    for v in values:
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_NUMBER:
            raise SecurityError(f"the number {v} is larger than templates may use ({MAX_NUMBER:,})")


_FORMAT_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, plus bounds on the work one render can ask for: no integer argument,
    repeat count or exponent over MAX_NUMBER, no range over MAX_RANGE items (see ``make_environment``)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
                    if len(seq) * times > MAX_OUTPUT:
                        raise SecurityError(f"repeating a sequence of {len(seq)} {times} times is over the limit "
                                            f"of {MAX_OUTPUT:,}")
        elif operator == "**":
            _check_numbers([right])
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 64:
                raise SecurityError(f"{left} ** {right} is larger than templates may compute")
        elif operator == "%" and isinstance(left, str):
            widths = [int(n) for m in _FORMAT_WIDTH.finditer(left) for n in m.groups() if n and n.isdigit()]
            _check_numbers(widths)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 (Jinja's own signature)
        _check_numbers(args)
        _check_numbers(kwargs.values())
        return super().call(__context, __obj, *args, **kwargs)


def _limited_range(*args):
    _check_numbers(args)
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise SecurityError(f"range of {len(r):,} items is over the limit of {MAX_RANGE:,}")
    return r


def _guarded(f):
    """A filter that refuses oversized integer arguments (``center(10**9)``) before doing any work."""

    @functools.wraps(f)  # keeps Jinja's pass_context / pass_environment marks
    def guarded(*args, **kwargs):
        _check_numbers(args[1:])
        _check_numbers(kwargs.values())
        return f(*args, **kwargs)

    return guarded


def printable(value):
    """What ``{{ … }}`` may print: text, numbers and containers of them — never a Python object whose text is
    its repr with a memory address (a function, Jinja's cycler or joiner), which would differ from run to run."""
    if isinstance(value, jinja2.Undefined):   # printing it raises StrictUndefined's own message
        return value
    if callable(value) or (type(value).__repr__ is object.__repr__ and type(value).__str__ is object.__str__):
        raise SecurityError(f"a {type(value).__name__} object is printed, not text: its text differs from run to "
                            "run (print a value, or call the object's method)")
    return value


def make_environment() -> LimitedSandbox:
    env = LimitedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
                         finalize=printable)
    env.filters["cap"] = capfirst
    env.filters["a"] = with_article
    env.filters = {name: _guarded(f) for name, f in env.filters.items()}
    env.globals["range"] = _limited_range
    env.globals.pop("lipsum", None)   # generates text of any size
    return env


@contextmanager
def time_limit(seconds: float = MAX_SECONDS):
    """Raise RenderLimitError in this block after ``seconds`` (main thread with SIGALRM only; elsewhere the
    other limits still hold)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    outer, interval = signal.getitimer(signal.ITIMER_REAL)
    if outer and outer <= seconds:  # an outer deadline comes first: leave it in charge
        yield
        return

    def expire(signum, frame):
        raise RenderLimitError(f"rendering took longer than {seconds:g} s")

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:  # put the outer timer back, less the time spent here
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3), interval)


ENV = make_environment()

#: filters the fast path may apply (plain one-argument functions of the value)
_FAST_FILTERS = {name for name, f in ENV.filters.items() if getattr(f, "jinja_pass_arg", None) is None}


def _slot_expression(node: nodes.Node) -> tuple[str, list] | None:
    """If ``node`` is ``slot``, ``slot.form`` or ``slot|f|g`` (no arguments), return (slot, steps)."""
    steps: list = []
    while True:
        if isinstance(node, nodes.Name):
            return node.name, steps[::-1]
        if isinstance(node, nodes.Getattr) and not node.attr.startswith("_"):
            steps.append(("attr", node.attr))
            node = node.node
        elif (isinstance(node, nodes.Filter) and node.name in _FAST_FILTERS and node.node is not None
              and not node.args and not node.kwargs and node.dyn_args is None and node.dyn_kwargs is None):
            steps.append(("filter", node.name))
            node = node.node
        else:
            return None


def _apply(value: Word, steps: list) -> str:
    out = value
    for kind, name in steps:
        out = ENV.getattr(out, name) if kind == "attr" else ENV.filters[name](out)
        if isinstance(out, jinja2.Undefined):
            str(out)  # StrictUndefined raises with Jinja's own message
    return str(printable(out))


class CompiledString:
    """One template string, ready to render from slot value indexes."""

    def __init__(self, source: str, slot_values: dict[str, Sequence[Word]]):
        self.source = source
        self.where: tuple[str | None, int | None] = (None, None)   # file and line, for errors mid-run
        ast = ENV.parse(source)  # raises TemplateSyntaxError
        self.slots = sorted(meta.find_undeclared_variables(ast))
        pieces = self._fast_pieces(ast, slot_values)
        self._fast = None if pieces is None else _renderer(pieces)
        # the compiled sandboxed template: needed up front only where the fast path does not apply
        self._template = ENV.from_string(source) if self._fast is None else None

    @property
    def template(self) -> jinja2.Template:
        if self._template is None:
            self._template = ENV.from_string(self.source)
        return self._template

    def _fast_pieces(self, ast: nodes.Template, slot_values: dict[str, Sequence[Word]]) -> list | None:
        pieces: list = []
        for stmt in ast.body:
            if not isinstance(stmt, nodes.Output):
                return None
            for node in stmt.nodes:
                if isinstance(node, nodes.TemplateData):
                    pieces.append(node.data)
                    continue
                expr = _slot_expression(node)
                if expr is None or expr[0] not in slot_values:
                    return None
                slot, steps = expr
                try:
                    pieces.append((slot, tuple(_apply(v, steps) for v in slot_values[slot])))
                except Exception:  # e.g. a missing word form: the sandboxed trial render reports it
                    return None
        return pieces

    @property
    def fast(self) -> bool:
        return self._fast is not None

    def can_render_empty(self) -> bool:
        """On the fast path: whether some choice of slot values renders ``""`` (no text between the expressions and
        an empty output possible for each); a sandboxed string answers through its renders instead."""
        return self._fast is not None and self._fast.can_be_empty

    def render(self, choice: dict[str, int], slot_values: dict[str, Sequence[Word]]) -> str:
        """Render with ``choice`` (slot → value index)."""
        if self._fast is not None:
            return self._fast(choice)
        try:
            return self.render_sandboxed(choice, slot_values)
        except Exception as e:  # the trial render at load passed; a rarer draw can still fail mid-run
            from ..errors import TemplateError

            values = {s: str(slot_values[s][choice[s]])[:40] for s in self.slots}
            raise TemplateError(f"cannot render {self.source[:60]!r} with {values}: {type(e).__name__}: {e}",
                                file=self.where[0], line=self.where[1]) from None

    def render_sandboxed(self, choice: dict[str, int], slot_values: dict[str, Sequence[Word]]) -> str:
        """Render through the sandbox, within the limits (output size, time); RenderLimitError past them."""
        out, size = [], 0
        with time_limit():
            for chunk in self.template.generate({s: slot_values[s][choice[s]] for s in self.slots}):
                size += len(chunk)
                if size > MAX_OUTPUT:
                    raise RenderLimitError(f"the rendered text is longer than {MAX_OUTPUT:,} characters")
                out.append(chunk)
        return "".join(out)


def _renderer(pieces: list):
    """A function of ``choice`` that joins the fast path's pieces: a %-format over the precomputed
    outputs, unrolled for the usual one to three slot expressions (it runs for every role of every
    record)."""
    fmt = "".join(p.replace("%", "%%") if p.__class__ is str else "%s" for p in pieces)
    lookups = [p for p in pieces if p.__class__ is not str]
    render = _join(fmt, lookups)
    render.can_be_empty = not (fmt % (("",) * len(lookups))) and all("" in values for _, values in lookups)
    return render


def _join(fmt: str, lookups: list):
    if not lookups:
        text = fmt % ()
        return lambda choice: text
    if len(lookups) == 1:
        (s0, v0), = lookups
        return lambda choice: fmt % (v0[choice[s0]],)
    if len(lookups) == 2:
        (s0, v0), (s1, v1) = lookups
        return lambda choice: fmt % (v0[choice[s0]], v1[choice[s1]])
    if len(lookups) == 3:
        (s0, v0), (s1, v1), (s2, v2) = lookups
        return lambda choice: fmt % (v0[choice[s0]], v1[choice[s1]], v2[choice[s2]])
    return lambda choice: fmt % tuple([values[choice[slot]] for slot, values in lookups])


def find_unsafe_attributes(source: str) -> list[str]:
    """Attribute or item names starting with ``_`` — a sandbox escape attempt, refused at load."""
    ast = ENV.parse(source)
    bad = [n.attr for n in ast.find_all(nodes.Getattr) if n.attr.startswith("_")]
    bad += [n.arg.value for n in ast.find_all(nodes.Getitem)
            if isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str) and n.arg.value.startswith("_")]
    return bad

