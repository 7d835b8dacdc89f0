"""Step 1: state abstraction and hindsight labeling (LLM backends on Ray Data + reward model)."""
