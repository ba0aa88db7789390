"""The engine: the one frame loop, its threaded pipeline, and jobs cut into segments.

``queues`` runs decode → method → encode; ``window`` and ``scenecut`` build the windows;
``segments``, ``task``, ``job``, ``manifest`` and ``local`` cut a job into segments, run
them (in this process for ``--resume``; :mod:`vsr.distributed` runs them on Ray) and
record them in a locked work directory.
"""
