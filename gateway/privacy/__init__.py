"""The privacy guard: find personal data in prompts and allow, redact or block it per role."""
