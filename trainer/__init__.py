"""Incremental LoRA fine-tuning, evaluation and prediction: the only package that imports torch.

Importing `trainer`, `trainer.settings`, `trainer.data` or `trainer.process` does not import torch; the
training process and `trainer.predict` do.
"""
