"""Scaling one job out over a Ray cluster: keyframe segments, one task each, stitched without re-encoding.

Ray is optional (``pip install 'vsr[ray]'``) and imported only when a job runs.
"""

from vsr.distributed.ray_runner import run_on_ray

__all__ = ["run_on_ray"]
