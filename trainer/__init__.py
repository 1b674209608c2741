"""Incremental LoRA fine-tuning, evaluation and prediction: the only package that imports torch."""
