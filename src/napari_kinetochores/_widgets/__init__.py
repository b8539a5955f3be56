"""napari dock widgets of napari-kinetochores (Qt lives here, and only here).

One module per widget; each is a thin shell over the library:

- :mod:`.load_movie` — open a movie with full control of axes, voxel size,
  channels and frame range;
- :mod:`.detect` — detect kinetochores frame by frame in a worker;
- :mod:`.correct` — add, delete, move and snap points, pair ids, undo,
  autosave;
- :mod:`.evaluate` — match predictions to reference points, metrics and plots;
- :mod:`.train` — train or fine-tune the UNet on layers;
- :mod:`.export` — write points and matched tables as CSV.
"""
