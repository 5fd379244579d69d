"""Fitting a LoRA on a corpus: models (hub id, folder, embedded default), data, LoRA settings, the loop.

torch, transformers and peft are imported inside the functions that need them.
"""
