"""Training of the learned backends.

- :mod:`.unet`: the UNet training loop (``kinetochores train CONFIG.yaml``).
"""
