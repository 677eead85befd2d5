"""Training runs: the orchestration behind the train command, and distribution strategies."""
