"""Training: everything that imports TensorFlow, Keras, matplotlib or Optuna (the `[train]` extra).

This `__init__` imports nothing, so `import digits.train.export` costs only what that
module needs, and a command can check its arguments before TensorFlow loads.
"""
