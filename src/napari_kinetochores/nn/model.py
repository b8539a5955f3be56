"""Model construction: pytorch-3dunet's UNet3D / ResidualUNet3D with anisotropic pooling."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from napari_kinetochores.errors import InputError

ARCHITECTURES = ("UNet3D", "ResidualUNet3D")
TARGETS = ("gaussian", "distance")


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network and feed it.

    Attributes
    ----------
    architecture : {"UNet3D", "ResidualUNet3D"}
        pytorch-3dunet model class.
    image_channels : list of int
        Movie channels read as input (0 = EGFP, 1 = mCherry).
    temporal_window : int
        Frames per channel centred on the current one (1 or 3, odd).
        Input channels = ``len(image_channels) * temporal_window``, ordered
        channel-major: ``[c0 t-1, c0 t, c0 t+1, c1 t-1, …]``.
    detected_channels : list of int
        Movie channels whose spots the network predicts (one output each).
    f_maps, num_levels, layer_order, num_groups : pytorch-3dunet options.
    pool_kernels : list of (z, y, x)
        Pooling kernel per level transition (``num_levels - 1`` entries). With
        0.3 µm z against 0.13 µm xy the first levels pool only y and x.
    target : {"gaussian", "distance"}
        Gaussian heatmap (peaks = maxima) or normalised distance map (minima).
    """

    architecture: str = "UNet3D"
    image_channels: list[int] = field(default_factory=lambda: [0])
    temporal_window: int = 1
    detected_channels: list[int] = field(default_factory=lambda: [0])
    f_maps: int = 16
    num_levels: int = 3
    layer_order: str = "gcr"
    num_groups: int = 8
    pool_kernels: list[list[int]] = field(default_factory=lambda: [[1, 2, 2], [2, 2, 2]])
    target: str = "gaussian"

    @property
    def in_channels(self) -> int:
        return len(self.image_channels) * self.temporal_window

    @property
    def out_channels(self) -> int:
        return len(self.detected_channels)

    def validate(self) -> ModelConfig:
        if self.architecture not in ARCHITECTURES:
            raise InputError(
                f"architecture must be one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.target not in TARGETS:
            raise InputError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.temporal_window < 1 or self.temporal_window % 2 == 0:
            raise InputError(f"temporal_window must be odd and >= 1, got {self.temporal_window}")
        if not self.image_channels or not self.detected_channels:
            raise InputError("image_channels and detected_channels must not be empty")
        if len(self.pool_kernels) != self.num_levels - 1:
            raise InputError(
                f"pool_kernels needs {self.num_levels - 1} entries (one per level), got {len(self.pool_kernels)}"
            )
        if any(len(k) != 3 or min(k) < 1 for k in self.pool_kernels):
            raise InputError(
                f"each pool kernel must be three integers >= 1, got {self.pool_kernels}"
            )
        if "g" in self.layer_order.split("c")[0] and self.in_channels >= self.num_groups:
            # pytorch-3dunet group-normalises the input first with "gcr"; the groups must divide it.
            if self.in_channels % self.num_groups:
                raise InputError(
                    f"{self.in_channels} input channels are not divisible by num_groups="
                    f"{self.num_groups}; choose num_groups > {self.in_channels} or a divisor of it"
                )
        if self.f_maps % self.num_groups:
            raise InputError(
                f"f_maps={self.f_maps} must be divisible by num_groups={self.num_groups}"
            )
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown model options {sorted(unknown)}")
        return cls(**values).validate()

    @property
    def divisor(self) -> tuple[int, int, int]:
        """Tile sizes must be multiples of this (product of the pooling kernels)."""
        total = [1, 1, 1]
        for kernel in self.pool_kernels:
            total = [a * b for a, b in zip(total, kernel, strict=True)]
        return tuple(total)


def architecture_kwargs(config: ModelConfig) -> dict:
    """Arguments of :func:`~napari_kinetochores.nn.bioimageio_architecture.kinetochore_unet`."""
    return {
        "architecture": config.architecture,
        "in_channels": config.in_channels,
        "out_channels": config.out_channels,
        "f_maps": config.f_maps,
        "num_levels": config.num_levels,
        "layer_order": config.layer_order,
        "num_groups": config.num_groups,
        "pool_kernels": [list(map(int, k)) for k in config.pool_kernels],
    }


def build_model(config: ModelConfig):
    """Instantiate the pytorch-3dunet network described by ``config``.

    pytorch-3dunet takes one pooling kernel for all levels; the per-level
    kernels are set on its own ``Encoder`` (and, for the residual variant,
    ``TransposeConvUpsampling``) building blocks after construction, by
    :func:`~napari_kinetochores.nn.bioimageio_architecture.kinetochore_unet`
    (the same file that bioimage.io packages carry).

    Returns
    -------
    torch.nn.Module
        Input (N, in_channels, Z, Y, X), output (N, out_channels, Z, Y, X):
        sigmoid probabilities (or normalised distances) in eval mode; use
        ``model(x, return_logits=True)`` for the logits. Returned in train mode.
    """
    from napari_kinetochores.nn.bioimageio_architecture import kinetochore_unet

    config.validate()
    return kinetochore_unet(**architecture_kwargs(config)).train()
