"""Offline RL: D4RL-style datasets (loaded, validated, generated locally), BC, TD3+BC, IQL, AWAC, and CNF."""
