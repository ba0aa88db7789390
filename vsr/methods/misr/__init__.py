"""MISR, multi-frame super-resolution without learned weights: flow alignment + robust fusion.

The registry builds it with :func:`vsr.methods.misr.method.build`.
"""
