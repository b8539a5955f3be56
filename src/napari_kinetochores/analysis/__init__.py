"""What comes after detection: matching to reference labels, sister pairs, tracks, measurements.

- :mod:`.matching`: one-to-one matching and metrics in µm.
- :mod:`.pairing`: metaphase plate fit and sister pairing.
- :mod:`.tracking`: linking detections over time (laptrack).
- :mod:`.measurements`: per-pair measurements (inter-kinetochore distance, delta).
"""
