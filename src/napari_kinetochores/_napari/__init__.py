"""Qt-free napari glue: readers, writers and sample data of the npe2 manifest,
and the spawned process that runs TensorFlow beside Qt.

Nothing here imports Qt; the dock widgets in :mod:`napari_kinetochores._widgets`
drive these.
"""
