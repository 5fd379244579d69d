"""The language model: which one (embedded, folder, Hub id), where it runs (device, dtype), and its anatomy
(decoder layers, attention and MLP projections, final norm and head) found from its structure — so the trainer
and the report work on any causal LM, not one family's module names.

torch and transformers are imported inside the functions that need them.
"""
