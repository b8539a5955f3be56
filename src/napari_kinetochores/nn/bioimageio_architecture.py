"""The network of a napari-kinetochores bioimage.io package, for tools without napari-kinetochores.

This file is copied into every package written by
:func:`napari_kinetochores.nn.bioimageio.export_bioimageio` as its
``pytorch_state_dict`` architecture, so it imports only torch and
pytorch-3dunet. :func:`napari_kinetochores.nn.model.build_model` builds its
networks with it too, so a package and the package's own code cannot drift
apart: pytorch-3dunet's UNet3D or ResidualUNet3D with one pooling kernel per
level (pytorch-3dunet takes one for all levels), which the anisotropic voxels
(0.3 µm z, 0.13 µm y/x) need.
"""

from __future__ import annotations


def kinetochore_unet(
    architecture: str,
    in_channels: int,
    out_channels: int,
    f_maps: int,
    num_levels: int,
    layer_order: str,
    num_groups: int,
    pool_kernels: list,
):
    """A pytorch-3dunet UNet with per-level pooling kernels (``num_levels - 1`` of (z, y, x)).

    Input (N, in_channels, Z, Y, X) float32, output (N, out_channels, Z, Y, X):
    sigmoid of the logits in eval mode.
    """
    from pytorch3dunet.unet3d import model as unet_models
    from pytorch3dunet.unet3d.buildingblocks import TransposeConvUpsampling
    from torch import nn

    network = getattr(unet_models, architecture)(
        in_channels=in_channels,
        out_channels=out_channels,
        final_sigmoid=True,
        f_maps=f_maps,
        layer_order=layer_order,
        num_groups=num_groups,
        num_levels=num_levels,
        is_segmentation=True,
        dropout_prob=0.0,
    )
    widths = [f_maps * 2**k for k in range(num_levels)]
    for level, kernel in enumerate(pool_kernels, start=1):
        encoder = network.encoders[level]
        pooling = nn.AvgPool3d if isinstance(encoder.pooling, nn.AvgPool3d) else nn.MaxPool3d
        encoder.pooling = pooling(kernel_size=tuple(kernel))
        decoder = network.decoders[num_levels - 1 - level]
        if isinstance(decoder.upsampling, TransposeConvUpsampling):
            decoder.upsampling = TransposeConvUpsampling(
                widths[level], widths[level - 1], kernel_size=3, scale_factor=tuple(kernel)
            )
    network.eval()
    return network
