"""Job bundles, the sandbox that runs them, the runner and its checkpoints (agent side)."""
