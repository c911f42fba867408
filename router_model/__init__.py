"""The learned query router: embed a prompt, classify it into a category."""
