"""Meta-gradient actor-critic: A2C on Jumanji Snake (`a2c`), K-step and mixed multi-step meta-gradients
(`metagrad`), and the meta-gradient's variance and bias diagnostics (`variance`)."""
