"""Benchmarks: prompts cut from real text, backends, quality evaluation and the bench runner."""
