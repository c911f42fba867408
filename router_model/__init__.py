"""The learned query router: embed a prompt, classify it into a category."""

from router_model.query_router import QueryRouter, RoutingDecision

__all__ = ["QueryRouter", "RoutingDecision"]
