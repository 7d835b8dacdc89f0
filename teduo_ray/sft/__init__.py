"""Step 3: SFT data, the tiny model factory, and the Ray Train fine-tuning trainer."""
