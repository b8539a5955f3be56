"""Shared numpy building blocks of every backend: peaks, sub-voxel refinement, training targets.

- :mod:`.peaks`: 3D local maxima with anisotropic minimum distances in µm.
- :mod:`.refine`: sub-voxel centres from the image (log-parabola, joint gaussian fit).
- :mod:`.targets`: training targets (gaussian heatmap, sphere, distance map).
"""
