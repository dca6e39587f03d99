"""Control environments: adapters for simulators that are not JAX (Gymnasium MuJoCo, PointMaze)."""
