"""Incremental LoRA fine-tuning, evaluation and prediction: the only package that imports torch.

Importing `trainer`, `trainer.settings`, `trainer.data`, `trainer.process`, `trainer.served` or `trainer.int8`
does not import torch; the training process and `trainer.predict` do.
"""
