"""The local stack: small real models prepared from PyPI packages and vLLM engines on the CPU."""
