"""Jumanji environments behind fluxrl's control-env interface (discrete actions with an action mask)."""
