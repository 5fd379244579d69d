"""Benchmarks: each runs corpusforge and its named baseline side by side in one run and reports ratios."""
