"""The training engine every recipe and compression stage runs on.

One loop (:mod:`~wattlm.training.loop`) with its optimisers and precision
(:mod:`~wattlm.training.optim`), data parallelism (:mod:`~wattlm.training.ddp`), checkpoints
and exact resume (:mod:`~wattlm.training.checkpoint`), the step log
(:mod:`~wattlm.training.steplog`), losses (:mod:`~wattlm.training.losses`), training data
(:mod:`~wattlm.training.data`), options (:mod:`~wattlm.training.options`), evaluation
(:mod:`~wattlm.training.evaluate`) and sparsity recovery (:mod:`~wattlm.training.recovery`).
The recipes built on it (fine-tuning, distillation, QAT) live in :mod:`wattlm.train`; the
``heal`` compression stage uses the loop directly.

Example:
    >>> from wattlm.training.options import TrainOptions
    >>> TrainOptions(lr=1e-4, max_steps=10).max_steps
    10
"""
