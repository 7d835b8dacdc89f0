"""The LLM layer: how the labeling LLM is served to Ray Data (processors.py).

Model and tokenizer loading for SFT, evaluation and the Hugging Face judge lives in
sft/models.py (one loader, with the pad-token fix and remote model directories).
"""
