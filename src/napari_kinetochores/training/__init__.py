"""Training of the learned backends.

- :mod:`.loop`: the one training loop (:class:`~.loop.Trainer`) both backends use.
- :mod:`.unet`: the UNet (``kinetochores train CONFIG.yaml``).
- :mod:`.stardist`: StarDist 3D (``kinetochores train --backend stardist CONFIG.yaml``).
- :mod:`.config`: config sections shared by both (data, validation) and YAML reading.
- :mod:`.samples`: simulated, file and in-memory labelled movies; the sample pool.
- :mod:`.validation`: what a run validates on (held-out frames of the user's
  labels, or simulated movies) and the score summary.
"""
