"""Occlusion-aware foveal attention on point clouds, meshes and volumes.

* :class:`AttentionAccumulator` -- live: ``add(camera, samples)``, ``add_rays``,
  ``values`` (float32 per point / vertex / voxel), ``flush``, ``reset``.
* :func:`accumulate_attention` -- batch over a recording.
* :class:`FovealModel` -- the foveal Gaussian and the camera->visual angle factor.
* :class:`AttentionEngine` -- the interface of the point-cloud, mesh and volume
  engines; :func:`make_engine`; :class:`AttentionOptions` -- the typed options
  the CLI, the viewer and the batch runner pass.

See ``docs/attention.md`` for the model. Numpy only at import time; Open3D is
imported when a mesh is used.
"""
from .accumulator import AttentionAccumulator
from .batch import accumulate_attention
from .engine import AttentionEngine, AttentionOptions, make_engine
from .foveal import FovealModel

__all__ = ["AttentionAccumulator", "accumulate_attention", "FovealModel", "AttentionEngine", "AttentionOptions",
           "make_engine"]
