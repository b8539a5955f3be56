"""Learned detection with a pytorch-3dunet 3D UNet.

torch and pytorch3dunet are imported inside the submodules, never here, so
``import napari_kinetochores`` stays light.

- :mod:`.model`: build a ``UNet3D`` / ``ResidualUNet3D`` with per-level pooling.
- :mod:`.losses`: GaussianDice, Dice, BCE and distance-regression losses.
- :mod:`.data`: temporal channel stacking, normalisation, patches, augmentation.
- :mod:`.training`: the training loop (``kinetochores train CONFIG.yaml``).
- :mod:`.inference`: tiled prediction and the :class:`UNetDetector`.
- :mod:`.checkpoint`: self-describing checkpoints and the bundled models.
"""
