"""Control environments: pure-JAX ones (FPO's grid world) behind the interface of `base.py`, and adapters for
simulators that are not JAX (Gymnasium MuJoCo, PointMaze)."""
