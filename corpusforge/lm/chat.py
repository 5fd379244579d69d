"""A text as the user's turn in a model's chat template: what the trainer, the report and the writer show a
chat model."""

from __future__ import annotations


def user_turn(tokenizer, text: str, *, system: str | None = None, answer_start: str | None = None) -> str:
    """``text`` as the user's turn in the model's chat template (after a system turn, when given), ready for the
    assistant's answer — begun with ``answer_start``, when given. The tokenizer must have a chat template."""
    turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": text}]
    if answer_start:
        return tokenizer.apply_chat_template(turns + [{"role": "assistant", "content": answer_start}],
                                             tokenize=False, continue_final_message=True)
    return tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
