"""A tiny randomly initialised Llama with a tokenizer trained here, saved as a Hugging Face folder.

Unit tests load it through the same path as any local model (``load_model(folder)``),
so they run in seconds and need nothing from a hub.
"""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import SAMPLE


def make_tiny_tokenizer(folder: Path, *, bos: bool = False) -> Path:
    """A byte-level BPE tokenizer (600 tokens) trained on the sample corpus, saved in ``folder``; ``bos``: it puts
    ``<bos>`` before every text by default, as Gemma's does."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    texts = [json.loads(line)["text"] for f in sorted((SAMPLE / "corpus" / "data").iterdir())
             for line in f.read_text(encoding="utf-8").splitlines()]
    texts += ["The capital of France is Paris.", "def add(a, b):\n    return a + b", "User: Hello!\nAssistant: Hi."]
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>"] + (["<bos>"] if bos else [])
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if bos:
        bpe.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[
            ("<bos>", bpe.token_to_id("<bos>"))])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                  **({"bos_token": "<bos>"} if bos else {}))
    tok.save_pretrained(folder)
    return folder


def make_tiny_model(folder: Path, *, layers: int = 4, hidden: int = 64, seed: int = 0, bos: bool = False) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").is_file():
        return folder
    tok = AutoTokenizer.from_pretrained(make_tiny_tokenizer(folder, bos=bos))
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=256, tie_word_embeddings=True,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder
