"""What comes after detection: matching to reference labels, sister pairs, tracks, measurements.

- :mod:`.matching`: one-to-one matching and metrics in µm.
- :mod:`.plate`: the metaphase plate fit, per frame.
- :mod:`.pairing`: sister pairing (a minimum-cost matching on a general graph).
- :mod:`.delta`: the two-colour (EGFP → mCherry) delta and chromatic shift.
- :mod:`.tracking`: linking detections over time (laptrack).
- :mod:`.measurements`: the measurement pipeline (tracks, pairs, K–K distance,
  plate, delta) that the CLI and the widget both run, and the sister-pair export.
- :mod:`.inputs`: input checks and conversions shared by these modules.
"""
