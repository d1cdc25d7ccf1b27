"""Serving over HTTP (the `[serve]` extra): FastAPI routes, a hardened uvicorn, micro-batching.

Serving never imports TensorFlow or `digits.train` (import-linter checks it).
"""
