"""Seeded synthetic pictures: MNIST digits photographed on paper, and junk with no digit.

NumPy and Pillow only: nothing here loads a model (import-linter checks it).
"""
