"""Chat-format training against text training (issue 16), same corpus, same default recipe, embedded model.

Text training is measured on text probes, chat-format training on the same probes in chat form (the prompt as
the user's turn in SmolLM2-Instruct's template, the marker at the start of the answer). The goal: chat moves the
markers on chat-form probes at least as far as text moves them on text probes. Reuses ``benchmarks.quality``: each
side is trained once per training seed of its ``SEEDS`` and reported as their means, as a quality row is.
"""

from __future__ import annotations

from .quality import SEEDS, over_seeds, train_and_measure


def run() -> dict:
    text, chat = (over_seeds([train_and_measure(mix="mix", fmt=fmt, overrides={"seed": seed}) for seed in SEEDS])
                  for fmt in ("text", "chat"))
    keys = ("en_median_p", "en_rank1", "ru_median_p", "ru_rank1", "en_ctrl_kl", "ru_ctrl_kl", "en_top1_kept",
            "ru_top1_kept", "steps", "train_s")
    return {
        "summary": (f"mixed corpus, default recipe, training seeds {', '.join(map(str, SEEDS))} (means). Text training "
                    f"on text probes: English median p "
                    f"{text['en_median_p']}, rank 1 {text['en_rank1']:.0%}; Russian {text['ru_median_p']}, "
                    f"{text['ru_rank1']:.0%}. Chat training on chat-form probes: English {chat['en_median_p']}, "
                    f"{chat['en_rank1']:.0%}; Russian {chat['ru_median_p']}, {chat['ru_rank1']:.0%}. Seed example "
                    f"(text): {text['seed']}; (chat): {chat['seed']}."),
        "table": {f"{k} (text / chat)": f"{text[k]} / {chat[k]}" for k in keys},
        "text": text, "chat": chat,
    }
