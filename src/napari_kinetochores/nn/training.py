"""Old import path of the UNet training loop, kept for one release: use
:mod:`napari_kinetochores.training.unet`."""

from napari_kinetochores.training.unet import (  # noqa: F401
    DataConfig,
    Sample,
    TrainConfig,
    TrainResult,
    ValidationConfig,
    check_data_config,
    config_from_dict,
    load_config,
    prepare_sample,
    read_yaml_config,
    train,
    validate,
    validation_set,
)
