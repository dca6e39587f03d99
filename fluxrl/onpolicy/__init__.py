"""On-policy RL for control environments: shared rollout mechanics (`rollout`) and Gaussian PPO (`ppo`)."""
