"""Composition-of-Experts gateway: one OpenAI-compatible endpoint in front of specialist experts."""
