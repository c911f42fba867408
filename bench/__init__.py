"""Benchmarks of the gateway: overhead, relay capacity, routing cost, a peer proxy and real vLLM (`python -m bench`)."""
