"""Pretrained networks: architectures, the ncnn reader, conversion, the manifest and safe loading.

Nothing heavy is imported here; see :mod:`vsr.models.loader` for the entry points
(:func:`~vsr.models.loader.load`, :func:`~vsr.models.loader.install`).
"""
