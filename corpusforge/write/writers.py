"""Writers: what writes the words of a model-written record.

``embedded`` (the embedded default model) and ``hf:ID_OR_FOLDER`` (any causal LM transformers loads) decode
locally under the clause's constraint — our own token mask (``ClauseRule``) or compiled by xgrammar
(``write.grammar``): ``engine="auto"`` (the default) takes the mask for a clause after opening words (measured
faster, with fewer refusals: benchmarks/writing.py) and xgrammar for a role's form, which a mask cannot express;
``"mask"`` or ``"xgrammar"`` takes one for all; ``openai:BASE_URL[#MODEL]`` asks any OpenAI-compatible
server (vLLM, llama.cpp's server, Ollama, TGI, a hosted API) for completions, and
``openai-chat:BASE_URL[#MODEL]`` for chat completions (servers that only chat: the prompt is the user's turn
after an instruction, and the answer — the words after the marker — is joined to it with one space), bounded in
concurrency, with retries. A server's token comes
from ``CORPUSFORGE_API_KEY`` (or ``OPENAI_API_KEY``) and is never printed or written.

A writer takes prompts, each with the key that seeds its random stream, and returns each prompt's
continuation (or None where nothing usable came back); it checks nothing itself — ``write.run`` does.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from ..errors import GenerateError
from ..lm.generation import cache_argument, padded
from ..lm.tokens import text_ids
from .constraint import Clause, ClauseRule, TokenClasses, cyrillic_share

ENGINES = ("auto", "xgrammar", "mask")   # how a local writer forces the clause; the first is the default

TOKEN_VARIABLES = ("CORPUSFORGE_API_KEY", "OPENAI_API_KEY")
CHAT_INSTRUCTION = ("Continue the user's text. Reply with only the words that come right after it: one clause on "
                    "one line, ending with a full stop. Do not repeat the text.")


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.9
    top_p: float = 0.95
    max_new_tokens: int = 64


@dataclass(frozen=True)
class Ask:
    prompt: str
    key: str                      # the cache key: seeds the ask's own random stream
    clause: Clause | None = None  # its own constraint (a role written whole); None: the writer's
    context: str | None = None    # a prompt the text answers: the user's turn, the text the answer begun


def framed(ask: Ask, tok=None) -> str:
    """What the model continues: the ask's text, after its context (when it has one) — in the model's chat
    template when its tokenizer has one (the context as the user's turn, the text as the answer begun), else
    plain, on the next line."""
    if ask.context is None:
        return ask.prompt
    if tok is not None and getattr(tok, "chat_template", None):
        from ..lm.chat import user_turn

        return user_turn(tok, ask.context, answer_start=ask.prompt)
    return f"{ask.context}\n{ask.prompt}"


class Writer(Protocol):
    identity: dict

    def write(self, asks: list[Ask]) -> list[str | None]: ...


def make_writer(spec: str, sampling: Sampling, clause: Clause, *, concurrency: int = 4, batch_size: int = 32,
                engine: str | None = None):
    """The writer ``spec`` names: embedded (the default model) | an embedded model's name (gemma3-270m) |
    hf:ID_OR_FOLDER | openai:BASE_URL[#MODEL]. ``engine`` (local writers only; None: the default) forces the
    clause while decoding."""
    from ..lm.embedded import DEFAULT_MODEL, EMBEDDED

    local = DEFAULT_MODEL if spec == "embedded" else spec if spec in EMBEDDED else \
        spec[3:] if spec.startswith("hf:") and len(spec) > 3 else None
    if local is not None:
        return LocalWriter(local, sampling, clause, batch_size=batch_size, engine=engine or ENGINES[0])
    if engine is not None:
        raise GenerateError(f"--engine {engine} is for a local writer; a server forces the clause with its own "
                            "guided decoding", hint="drop --engine, or write with embedded or hf:ID_OR_FOLDER")
    for prefix, chat in (("openai:", False), ("openai-chat:", True)):
        if spec.startswith(prefix) and len(spec) > len(prefix):
            url, _, model = spec[len(prefix):].partition("#")
            return ServerWriter(url, model or None, sampling, clause, concurrency=concurrency, chat=chat)
    raise GenerateError(f"--writer {spec!r} is not a writer",
                        hint="use embedded, hf:ID_OR_FOLDER, openai:BASE_URL[#MODEL] or openai-chat:BASE_URL[#MODEL]")


# ---------------------------------------------------------------------------
# Local: transformers, the clause forced while decoding


class LocalWriter:
    """A causal LM on this machine; ``batch_size`` prompts decoded together, each row from its own stream."""

    def __init__(self, spec: str, sampling: Sampling, clause: Clause, *, batch_size: int = 32,
                 engine: str = ENGINES[0]):
        from pathlib import Path

        from ..lm.fingerprint import fingerprint
        from ..lm.load import resolve_model

        if engine not in ENGINES:
            raise GenerateError(f"--engine {engine!r} is not one of {', '.join(ENGINES)}")
        if engine == "xgrammar":
            from .grammar import _xgrammar

            _xgrammar()                    # missing: said now, before the model loads (auto: at a role's form)
        folder = resolve_model(spec)
        self.spec, self.sampling, self.clause, self.batch_size = spec, sampling, clause, batch_size
        self.engine = engine
        files = fingerprint(folder) if Path(folder).is_dir() else "hub:" + folder
        # as run.json's model_sha256; the engine is named when a clause is not written under the mask, as the
        # earliest caches were (a role's form is only ever written by xgrammar: its spec says so)
        self.identity = {"kind": "local", "model": spec, "model_fingerprint": files}
        if engine == "xgrammar":
            from .constraint import LONGEST_WORD, UNPRINTED

            self.identity.update(engine=engine, unprinted=UNPRINTED, longest_word=LONGEST_WORD)   # the grammar's bounds
        self._lm = None                    # loaded on the first answer not in the cache
        self._classes: dict[str, TokenClasses] = {}     # by the constraint's end: all a class depends on
        self._grammars: dict = {}

    @property
    def lm(self):
        if self._lm is None:
            from ..lm.load import load_model

            self._lm = load_model(self.spec)
            self._lm.model.eval()
        return self._lm

    def classes(self, clause: Clause) -> TokenClasses:
        """The vocabulary's token classes for ``clause`` (a pass over every token: made once per ending)."""
        if clause.end not in self._classes:
            self._classes[clause.end] = TokenClasses(self.lm.tokenizer, clause)
        return self._classes[clause.end]

    def rule(self, clause: Clause, width: int, asks: list[Ask]):
        """The logits processor that forces ``clause`` on a batch of ``asks`` (prompts ``width`` tokens wide)."""
        from ..draw import keyed_random

        lm, s = self.lm, self.sampling
        streams, eos = [keyed_random(a.key) for a in asks], lm.tokenizer.eos_token_id
        if self.engine == "mask" and not isinstance(clause, Clause):
            raise GenerateError("our own token mask forces a clause after opening words, not a role's form",
                                hint="write with --engine auto or xgrammar")
        if isinstance(clause, Clause) and self.engine != "xgrammar":
            return ClauseRule(self.classes(clause), clause, width, streams, eos, s.temperature, s.top_p,
                              s.max_new_tokens)
        if clause not in self._grammars:
            from .grammar import Grammar

            self._grammars[clause] = Grammar(lm.tokenizer, lm.model.config.vocab_size, clause, self.classes(clause))
        return self._grammars[clause].rule(width, streams, eos, s.temperature, s.top_p, s.max_new_tokens)

    def write(self, asks: list[Ask]) -> list[str | None]:
        """Batches of asks alike in constraint, script and length (a batch decodes until its longest row ends,
        and a Russian clause takes SmolLM2 several times the tokens of an English one); the answers in the asks'
        order."""
        def constraint(i: int):
            return asks[i].clause or self.clause

        def alike(i: int):
            c, ask = constraint(i), asks[i]
            return c.end, c.min_words, c.max_words, repr(getattr(c, "pieces", ())), \
                cyrillic_share(ask.prompt or ask.context or "") > 0.5, len(ask.prompt) + len(ask.context or "")

        order = sorted(range(len(asks)), key=alike)      # equal constraints side by side
        out: list[str | None] = [None] * len(asks)
        start = 0
        while start < len(order):
            clause, end = constraint(order[start]), start
            while end < len(order) and end - start < self.batch_size and constraint(order[end]) == clause:
                end += 1
            rows = order[start:end]
            for i, text in zip(rows, self._batch([asks[i] for i in rows], clause)):
                out[i] = text
            start = end
        return out

    def _batch(self, asks: list[Ask], clause: Clause) -> list[str | None]:
        import torch

        lm = self.lm
        tok, model = lm.tokenizer, lm.model
        ids = [text_ids(tok, framed(a, tok)) for a in asks]
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        rows, mask = padded(model, ids, pad, left=True)                             # (batch, width)
        width = rows.shape[1]
        rule = self.rule(clause, width, asks)
        with torch.no_grad():
            new = decode(model, rows, mask, rule, self.sampling.max_new_tokens, pad, tok.eos_token_id)
        texts: list[str | None] = []
        for prompt_ids, row in zip(ids, new.tolist()):
            if tok.eos_token_id not in row:        # ran out of tokens before its sentence ended
                texts.append(None)
                continue
            row = row[:row.index(tok.eos_token_id)]
            full, head = tok.decode(prompt_ids + row), tok.decode(prompt_ids)
            texts.append(full[len(head):] if full.startswith(head) else tok.decode(row))
        return texts


def decode(model, rows, mask, rule, max_new_tokens: int, pad: int, eos: int):
    """``generate``'s greedy loop over ``rule``'s choices (a logits processor that leaves one token a row), with
    the rows that have ended dropped from the forward passes and from the KV cache: each later step runs only the
    rows still writing, and a step's cost grows with its rows. The rule sees every row every step, as
    ``generate`` shows them (an ended row's scores flat, its token the padding), so each row draws from its own
    stream as before. Returns the new tokens, (rows, steps)."""
    import torch

    name = cache_argument(model)
    batch, width = rows.shape
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)        # left padding: each row from 0
    out = model(input_ids=rows, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, logits, attention = out.past_key_values, out.logits[:, -1], mask
    active = torch.arange(batch, device=rows.device)        # the rows still writing, in the cache's order
    at = positions[:, -1] + 1                               # each active row's next position
    ended = torch.zeros(batch, dtype=torch.bool, device=rows.device)
    ids = rows
    for _ in range(max_new_tokens):
        scores = torch.zeros((batch, logits.shape[-1]), dtype=logits.dtype, device=logits.device)
        scores[active] = logits
        chosen = rule(ids, scores).argmax(-1).masked_fill(ended, pad)
        ids = torch.cat([ids, chosen[:, None]], dim=1)
        ended |= chosen == eos
        if bool(ended.all()):
            break
        still = ~ended[active]
        if not bool(still.all()):
            keep = still.nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            active, attention, at = active[keep], attention[keep], at[keep]
        attention = torch.cat([attention, attention.new_ones((len(active), 1))], dim=1)
        out = model(input_ids=chosen[active][:, None], attention_mask=attention, position_ids=at[:, None],
                    use_cache=True, logits_to_keep=1, **{name: cache})
        cache, logits, at = out.past_key_values, out.logits[:, -1], at + 1
    return ids[:, width:]


# ---------------------------------------------------------------------------
# A server: OpenAI-compatible completions


class ServerWriter:
    """``POST {base}/v1/completions`` per prompt, ``concurrency`` at a time; 429 and 5xx answers and dropped
    connections are retried with backoff (``retries`` times), other HTTP errors stop the run with the server's
    own words. The constraint is sent where servers take one (``stop``, and vLLM's ``guided_regex``) and checked
    on every answer anyway: servers that ignore it exist."""

    BACKOFF = 0.5   # seconds before the first retry, doubled before each next one

    def __init__(self, base_url: str, model: str | None, sampling: Sampling, clause: Clause, *,
                 concurrency: int = 4, retries: int = 3, timeout: float = 120.0, chat: bool = False):
        if not base_url.startswith(("http://", "https://")):
            raise GenerateError(f"--writer openai:{base_url}: the server address must start with http:// or "
                                "https://", hint="e.g. openai:http://127.0.0.1:8000#my-model")
        self.base = base_url.rstrip("/").removesuffix("/v1")
        self.sampling, self.clause, self.retries, self.timeout = sampling, clause, retries, timeout
        self.concurrency, self.chat = max(1, concurrency), chat
        self.token = next((os.environ[v] for v in TOKEN_VARIABLES if os.environ.get(v)), None)
        self.model = model or self._served_model()
        self.identity = {"kind": "openai-chat" if chat else "openai", "model": self.model}

    def _request(self, path: str, body: dict | None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, headers=headers,
                                         method="POST" if body is not None else "GET")
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return json.loads(response.read().decode("utf-8"))
            except urllib.error.HTTPError as e:
                if e.code != 429 and e.code < 500 or attempt == self.retries:
                    said = e.read().decode("utf-8", "replace").strip().splitlines()[:1]
                    raise GenerateError(f"the writer's server answered HTTP {e.code} to {path}"
                                        + (f": {said[0][:200]}" if said else ""), hint=self._hint()) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as e:
                if attempt == self.retries:
                    reason = getattr(e, "reason", e)
                    raise GenerateError(f"cannot reach the writer's server {self.base}: {reason}",
                                        hint="is it running, and is the address right?") from None
            except (ValueError, UnicodeDecodeError):
                raise GenerateError(f"the writer's server {self.base} answered {path} with something that is not "
                                    "JSON", hint="is it an OpenAI-compatible server?") from None
            time.sleep(self.BACKOFF * 2 ** attempt)

    def _hint(self) -> str:
        return "check the model name after # and the token in " + " or ".join(TOKEN_VARIABLES)

    def _served_model(self) -> str:
        listed = self._request("/v1/models", None)
        try:
            return str(listed["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise GenerateError(f"the writer's server {self.base} lists no model at /v1/models",
                                hint="name one: openai:BASE_URL#MODEL") from None

    def _one(self, ask: Ask) -> str | None:
        seed = int(hashlib.blake2b(ask.key.encode(), digest_size=4).hexdigest(), 16)
        body = {"model": self.model, "max_tokens": self.sampling.max_new_tokens, "seed": seed,
                "temperature": self.sampling.temperature, "top_p": self.sampling.top_p, "stop": ["\n"]}
        if self.chat:
            body["messages"] = [{"role": "system", "content": CHAT_INSTRUCTION},
                                {"role": "user", "content": framed(ask)}]
            answer = self._request("/v1/chat/completions", body)
        else:
            body.update(prompt=framed(ask), guided_regex=(ask.clause or self.clause).regex)
            answer = self._request("/v1/completions", body)
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] if self.chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            return None
        if not isinstance(text, str):
            return None
        if not self.chat:
            return text
        return (" " if ask.prompt else "") + text.lstrip(" ")    # a role that opens the answer opens with a word

    def write(self, asks: list[Ask]) -> list[str | None]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(self._one, asks))
