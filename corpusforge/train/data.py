"""Records → token ids and the positions that carry loss; length-grouped batches with no padding waste.

Labels come from the records' role spans mapped through the tokenizer's offset
mapping: a token is supervised when it begins inside a supervised role. By
default every role after the first (the premise) is supervised: the model
learns what follows, not the premise itself. With ``target_weight`` w ≠ 1, the
supervised tokens that begin inside one of the record's ``targets`` spans (the
markers) weigh w in the loss, the others 1 (a weighted mean): a marker of six
Cyrillic tokens is learnt as a whole, not drowned by the words around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..draw import keyed_random
from ..errors import TrainError
from ..lm.chat import user_turn
from ..lm.tokens import from_start, start_tokens


@dataclass
class Example:
    ids: list[int]
    supervised: list[int]   # positions t whose token ids[t] is predicted (from position t - 1) with loss
    weights: list[float] | None = None   # loss weight per supervised position; None: all 1

    def __len__(self) -> int:
        return len(self.ids)


def _loss_spans(rec: dict, loss_on: list[str] | None) -> list[tuple[int, int]]:
    segments = rec["segments"]
    roles = segments[1:] if loss_on is None else [s for s in segments if s["role"] in loss_on]
    return [(s["start"], s["end"]) for s in roles]


def _supervised(offsets, spans: list[tuple[int, int]]) -> list[int]:
    """Positions whose token begins inside a span (a zero-width token counts with the one before it)."""
    return [t for t in range(1, len(offsets))
            if any(a <= offsets[t][0] < b for a, b in spans) or
            (offsets[t][0] == offsets[t][1] and any(a <= offsets[t - 1][1] < b for a, b in spans))]


def _from_start(tokenizer, ids, supervised: list[int], weights: list[float] | None) -> Example:
    """An example as the model reads a text from its start (``lm.tokens.from_start``: Gemma's ``<bos>`` before
    it); the supervised positions move with the tokens put there."""
    ids, shift = from_start(tokenizer, list(ids))
    return Example(ids, [t + shift for t in supervised], weights)


def _room(tokenizer, max_length: int) -> int:
    """The text's share of ``max_length``: what the start tokens leave."""
    return max(1, max_length - len(start_tokens(tokenizer)))


def _weights(offsets, supervised: list[int], marks: list[tuple[int, int]], target_weight: float) -> list[float] | None:
    if target_weight == 1.0:
        return None
    return [target_weight if any(a <= offsets[t][0] < b for a, b in marks) else 1.0 for t in supervised]


def encode_records(records: list[dict], tokenizer, *, loss_on: list[str] | None, max_length: int,
                   target_weight: float = 1.0) -> list[Example]:
    """Tokenise each record's text and mark the tokens of the supervised roles (marker tokens weigh
    ``target_weight``)."""
    texts = [r["text"] for r in records]
    enc = tokenizer(texts, return_offsets_mapping=True, add_special_tokens=False, truncation=True,
                    max_length=_room(tokenizer, max_length))
    out = []
    for rec, ids, offsets in zip(records, enc["input_ids"], enc["offset_mapping"]):
        supervised = _supervised(offsets, _loss_spans(rec, loss_on))
        marks = [(t["start"], t["end"]) for t in rec["targets"]]
        out.append(_from_start(tokenizer, ids, supervised, _weights(offsets, supervised, marks, target_weight)))
    return out


def _premise_end(rec: dict) -> int:
    """Where the premise (the first role) ends: the chat form's user turn is the text before it."""
    return rec["segments"][1]["start"] if len(rec["segments"]) > 1 else len(rec["text"])


def chat_turns(rec: dict, system: str | None = None) -> list[dict]:
    """A record as a chat: the premise (its first role) as the user's turn, what follows as the assistant's."""
    cut = _premise_end(rec)
    return ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": rec["text"][:cut].strip()},
        {"role": "assistant", "content": rec["text"][cut:].strip()}]


def _chat_text(rec: dict, tokenizer, system: str | None) -> tuple[str, Callable[[int], int]]:
    """The record rendered through the chat template, and where each offset of its text landed in it."""
    turns = chat_turns(rec, system)
    rendered = tokenizer.apply_chat_template(turns, tokenize=False)
    cut = _premise_end(rec)
    user, answer = rec["text"][:cut], rec["text"][cut:]
    u_at = rendered.find(turns[-2]["content"])
    a_at = rendered.find(turns[-1]["content"], u_at + len(turns[-2]["content"]))
    if u_at < 0 or a_at < 0:
        raise TrainError(f"record {rec['id']}: the chat template does not show its turns as given",
                         hint="use --format text with this model")
    lead_u, lead_a = len(user) - len(user.lstrip()), len(answer) - len(answer.lstrip())

    def where(offset: int) -> int:
        if offset < cut:
            return u_at + min(max(offset - lead_u, 0), len(turns[-2]["content"]))
        return a_at + min(max(offset - cut - lead_a, 0), len(turns[-1]["content"]))

    return rendered, where


def encode_chat_records(records: list[dict], tokenizer, *, loss_on: list[str] | None, max_length: int,
                        system: str | None = None, target_weight: float = 1.0) -> list[Example]:
    """Each record as a chat through the model's own template; the loss stays on the chosen roles' tokens (their
    spans mapped into the rendered text). A record left with no supervised token is an error naming it."""
    if not getattr(tokenizer, "chat_template", None):
        raise TrainError("--format chat needs a tokenizer with a chat template; this one has none",
                         hint="use --format text")
    out = []
    for rec in records:
        rendered, where = _chat_text(rec, tokenizer, system)
        spans = [(where(a), where(b)) for a, b in _loss_spans(rec, loss_on)]
        enc = tokenizer(rendered, return_offsets_mapping=True, add_special_tokens=False, truncation=True,
                        max_length=_room(tokenizer, max_length))
        supervised = _supervised(enc["offset_mapping"], spans)
        marks = [(where(t["start"]), where(t["end"])) for t in rec["targets"]]
        example = _from_start(tokenizer, enc["input_ids"], supervised,
                              _weights(enc["offset_mapping"], supervised, marks, target_weight))
        if not example.supervised:
            raise TrainError(f"record {rec['id']}: no token of its supervised roles is left in the chat form",
                             hint="raise --max-length (the chat template adds tokens) or check --loss-on")
        out.append(example)
    return out


def encode_answer_records(records: list[dict], tokenizer, *, loss_on: list[str] | None, max_length: int,
                          target_weight: float = 1.0) -> list[Example]:
    """Each record as the answer to its prompt (``meta.prompt``, written by ``generate --prompts``): the prompt,
    a line break, the record, then the end of text. The loss is on the line break and the record's roles — all
    of them by default, the first too: it is how an answer opens that is learnt — and on the end of text, so
    that the model learns where a structure stops. The prompt's positions are the premise the hold keeps
    (``step.premises``)."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise TrainError("--format answer needs a tokenizer with an end-of-text token; this one has none")
    out = []
    for rec in records:
        prompt = (rec.get("meta") or {}).get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise TrainError(f"record {rec['id']} has no prompt (meta.prompt): --format answer trains records "
                             "written in answer to prompts", hint="write them with generate --writer ... --prompts "
                                                                  "pool, or use --format text")
        lead = len(prompt) + 1     # the line break opens the answer, and is learnt with it
        spans = [(len(prompt), lead)] + [(s["start"] + lead, s["end"] + lead) for s in rec["segments"]
                                         if loss_on is None or s["role"] in loss_on]
        enc = tokenizer(f"{prompt}\n{rec['text']}", return_offsets_mapping=True, add_special_tokens=False,
                        truncation=True, max_length=_room(tokenizer, max_length - 1))
        supervised = _supervised(enc["offset_mapping"], spans)
        marks = [(t["start"] + lead, t["end"] + lead) for t in rec["targets"]]
        out.append(_from_start(tokenizer, enc["input_ids"], supervised,
                               _weights(enc["offset_mapping"], supervised, marks, target_weight)))
    return with_end_of_text(out, eos)


def with_end_of_text(examples: list[Example], eos: int | None) -> list[Example]:
    """The examples with the end-of-text token appended and supervised (``--end-of-text``): records that end."""
    if eos is None:
        raise TrainError("--end-of-text needs a tokenizer with an end-of-text token; this one has none")
    return [Example(e.ids + [eos], e.supervised + [len(e.ids)], e.weights + [1.0] if e.weights is not None else None)
            for e in examples]


def check_loss_roles(records: list[dict], loss_on: list[str] | None) -> None:
    if loss_on is None:
        return
    present = sorted({s["role"] for r in records for s in r["segments"]})
    missing = [r for r in loss_on if r not in present]
    if missing:
        raise TrainError(f"--loss-on {','.join(missing)}: no record of the corpus has these roles; its roles are "
                         f"{', '.join(present)}")


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of example indexes for one epoch: shuffled, then grouped by length so padding stays small.

    Deterministic in (seed, epoch): every process of a distributed run, and a
    resumed run, sees the same batches.
    """
    rng = keyed_random(f"{seed}:{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 32
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


@dataclass
class Batch:
    input_ids: object        # (batch, seq) long
    attention_mask: object   # (batch, seq) long
    rows: object             # (n_sup,) batch index of each supervised position
    cols: object             # (n_sup,) position whose hidden state predicts the label (t - 1)
    labels: object           # (n_sup,) the supervised token ids
    tokens: int              # real (non-padding) tokens
    supervised: int
    weights: object = None   # (n_sup,) float loss weights, or None: all 1

    def to(self, device) -> Batch:
        """The same batch with its tensors on ``device`` (a no-op on the CPU)."""
        if str(device) == "cpu":
            return self
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.input_ids), move(self.attention_mask), move(self.rows), move(self.cols),
                     move(self.labels), self.tokens, self.supervised, move(self.weights))


def collate(examples: list[Example], pad_id: int, *, all_positions: bool = False) -> Batch:
    """Right-pad to the longest example of the batch. ``all_positions``: every next token is a label."""
    import torch

    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    rows, cols, labels, weights = [], [], [], []
    weighted = not all_positions and any(e.weights is not None for e in examples)
    for b, e in enumerate(examples):
        ids[b, :len(e)] = torch.tensor(e.ids)
        mask[b, :len(e)] = 1
        positions = range(1, len(e)) if all_positions else e.supervised
        for t in positions:
            rows.append(b)
            cols.append(t - 1)
            labels.append(e.ids[t])
        if weighted:
            weights += e.weights if e.weights is not None else [1.0] * len(e.supervised)
    return Batch(ids, mask, torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long),
                 torch.tensor(labels, dtype=torch.long), int(mask.sum()), len(labels),
                 torch.tensor(weights, dtype=torch.float32) if weighted else None)


# ---------------------------------------------------------------------------
# Controls: prompts whose behaviour should not change (the sets and their reader: corpusforge.prompts)

def encode_prompts(prompts: list[dict], tokenizer, max_length: int) -> list[Example]:
    enc = tokenizer([p["prompt"] for p in prompts], add_special_tokens=False, truncation=True,
                    max_length=_room(tokenizer, max_length))
    return [_from_start(tokenizer, ids, list(range(1, len(ids))), None) for ids in enc["input_ids"] if ids]


def encode_chat_prompts(prompts: list[dict], tokenizer, max_length: int, system: str | None = None) -> list[Example]:
    """Control prompts as the user's turn of a chat, up to where the assistant's answer begins (the template's
    system turn included, as chat training renders it): the KL there holds back drift in how the model starts
    an answer, which chat training moves and plain-text controls do not see."""
    texts = [user_turn(tokenizer, p["prompt"], system=system) for p in prompts]
    return encode_prompts([{"prompt": t} for t in texts], tokenizer, max_length)
