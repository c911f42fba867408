"""Composition measured: which expert answers each category best, and whether routing beats any one expert."""
