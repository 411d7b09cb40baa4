"""Training: the optimizer, the shared training step and run bookkeeping (loop.py), pretraining,
fine-tuning with its tasks, and the metrics."""
