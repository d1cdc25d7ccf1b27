"""Reading: a picture becomes an answer.

The stages run once, in order: `load` (safe decode, budget, EXIF) → `ink` (find the
writing; `paper` estimates the paper's light, `sheet` leaves out a table round the
sheet, `rules` takes out frames and ruled lines, `faint_rules` those too faint to stay whole) → `layout` (lines, digits within a line) → `normalize` (MNIST 28×28) → `model` (ONNX Runtime) → `reader` (the decision:
a digit, "not a digit", or unsure; `touching` cuts a piece as wide as two digits in two). `answers` holds what it returns (`Digit`, `Line`, `Page`); `geometry` and `levels` hold what those share.

This layer needs NumPy, Pillow, SciPy and ONNX Runtime only. It never imports
TensorFlow, Keras, matplotlib, Optuna or `digits.train`; import-linter checks it
(see `[tool.importlinter]` in pyproject.toml).
"""
