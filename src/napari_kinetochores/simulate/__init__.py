"""Realistic synthetic kinetochore movies with ground truth.

The simulator renders two-colour (EGFP, mCherry) 3D time-lapse movies of
kinetochore sister pairs in a metaphase plate, with the exact sub-voxel
ground truth of every kinetochore in every frame. It is used to train and
to benchmark detectors, so it is deterministic for a given seed (a
``numpy.random.Generator``; the global RNG is never touched) and it can be
randomised widely (:func:`sample_params`; :func:`random_params` adds real
cameras, aberrations, prometaphase, preprocessed files and voxel sizes
0.15–0.6 µm in z and 0.06–0.2 µm in y/x). Every option beyond the metaphase
plate and the uniform camera is off by default, so default parameters give
the same movie for the same seed as before they existed.

What is modelled
----------------
Geometry
    Sister pairs in a tilted disk (the metaphase plate). Pair centres are
    spread uniformly over the disk (radius ~ ``sqrt(n_pairs)``, so the density
    matches the real annotations: nearest-neighbour distance median ~0.96 µm),
    with a gaussian thickness along the plate normal and a minimum distance
    between pair centres. The sister axis is the plate normal with a random
    orientation jitter; the sister separation is a truncated normal.
    ``layout="real"`` uses the 79 annotated real kinetochore centres instead
    (see :func:`reference_layout_um`): they are the EGFP kinetochores
    themselves, turned so that the real plate normal (their smallest PCA
    axis) becomes the simulated normal, rotated randomly about it and
    jittered slightly. Sisters are paired greedily by the smallest distance
    under a metric that counts in-plane offsets twice (so partners lie
    across the plate, along the normal), up to 2 µm apart: 37 pairs (real
    separations 0.31–1.74 µm, median 0.96 µm) and 5 kinetochores whose
    sister is missing (each has its own ``pair_id``). Pairs that do not fit
    the volume are dropped, and the ``n_pairs`` closest to the plate axis are
    kept. The sister-separation and orientation parameters do not apply.
    ``layout="ball"`` is prometaphase: pair centres uniform in a ball
    (radius ~ ``cbrt(n_pairs)``), sister axes in random directions, and
    kinetochores of different pairs at least ``min_kinetochore_distance_um``
    apart (nearest neighbours mostly 0.3–0.5 µm).
Motion
    The whole plate oscillates along its normal (sine, given amplitude and
    period in frames); each pair does a small random walk; each kinetochore
    has a small independent jitter per frame (so the sister separation
    fluctuates but does not drift).
Channels
    Channel 0 is EGFP (the kinetochore). Channel 1 is mCherry, a second
    kinetochore protein that sits ``mcherry_offset_nm`` further out along the
    sister axis (positive: towards the spindle pole, i.e. away from the
    sister; negative: towards the centromere). It is dimmer
    (``mcherry_rel_brightness`` of the EGFP mean peak) and, being red, has a
    slightly wider PSF (``mcherry_psf_scale``).
Optics
    An anisotropic PSF integrated over each voxel (difference of erf per
    axis), at sub-voxel positions. ``render_style="gaussian"`` is a 3D
    gaussian; ``"moffat"`` is a heavier-tailed, Moffat-like (β = 2.5) xy
    profile of the same FWHM with a longer z extent, to test domain shift.
    Brightness varies between kinetochores (log-normal, given CV). The PSF
    is given in µm, so spots keep their physical size at any voxel size.
    Optional depth-dependent aberration: the z sigma grows with depth, an
    axial side lobe (axial asymmetry) takes a growing share of the light,
    and a focal shift scales apparent axial distances.
Background and clutter
    A uniform background, an out-of-focus haze (a broad smooth blob around the
    plate), and optional clutter: larger, dimmer-per-voxel blobs (out-of-focus
    aggregates) that are *not* kinetochores and are not in the ground truth.
Camera
    Photobleaching (``exp(-bleach_rate * t)``) of everything but the uniform
    background, Poisson shot noise (``noise_model="emccd"`` adds the EM
    multiplication excess noise, a factor 2 on the shot-noise variance),
    optional saturation at a full well, gaussian read noise, gain, camera
    offset, rounding and clipping to the ADC range (uint16). Optionally an
    sCMOS fixed pattern: per-pixel offset, gain and read-noise maps drawn
    once per movie for each sensor pixel (y, x), the same in every plane and
    frame, with hot pixels, dead pixels and hot columns.
Output
    The camera's uint16 ADU, or as users' preprocessed files are:
    background-subtracted and clipped at 0, 8-bit quantised, or rescaled
    float32 (``background_percentile``, ``output_dtype``).

Signal-to-noise ratio
---------------------
``snr`` is defined in frame 0 of channel 0 (EGFP), in photo-electrons, as::

    SNR = mean over kinetochores of the peak of the noise-free spot
          / noise std at the local background

where the *peak* of a spot is the value of its brightest voxel (the
voxel-integrated PSF times the spot's amplitude, so it accounts for the
spot's sub-voxel position) above the local background, and the noise std is
``sqrt(F * B + read_noise_e**2)`` with ``B`` the mean expected background
(uniform background plus haze) at the spot centres and ``F`` = 1 for
``"poisson_gaussian"`` and 2 for ``"emccd"``. The spot amplitudes are scaled so
that this holds exactly for the rendered movie (the haze, set relative to the
spot peak, enters the noise; the resulting equation is solved exactly).
mCherry has the same background, so its SNR is roughly
``mcherry_rel_brightness * snr``. Later frames are dimmer (photobleaching).
With an sCMOS fixed pattern ``read_noise_e`` is the median of the per-pixel
read noise; with depth aberration the peak is that of the main PSF lobe.

:data:`SNR_LEVELS` gives named levels. At ``"moderate"`` a simple LoG detector
finds ~95 % of spots, at ``"low"`` it starts to struggle, and ``"very_low"``
(peak / noise = 2) is hard. Measured with a LoG filter (sigma = PSF sigma),
3×5×5 local maxima and the best threshold, on default 20-pair movies (F1 at
0.3 µm / recall, gaussian style): very_low 0.29 / 0.24, low 0.80 / 0.78,
moderate 0.95 / 0.92, high 0.97 / 0.95; the ceiling of that detector is
~0.95 recall because it merges the closest pairs (< 0.75 µm).

Modules: :mod:`.params` (parameters, SNR levels, validation),
:mod:`.layouts` (plate, pairs, motion), :mod:`.rendering` (PSF),
:mod:`.camera` (noise chain), :mod:`.movies` (:func:`simulate_movie`),
:mod:`.randomise` (:func:`sample_params`, :func:`random_params`), and
:mod:`.distributions` (shared random draws).

Coordinates follow the package conventions: axes TCZYX, positions in float
voxel coordinates with the voxel centre at the integer index, physical
coordinates = voxel coordinates × voxel size (z, y, x) in µm.

Example
-------
>>> from napari_kinetochores.simulate import SimulationParams, simulate_movie
>>> movie = simulate_movie(SimulationParams(n_frames=2, shape_zyx=(16, 64, 64), n_pairs=4), seed=1)
>>> movie.image.shape, movie.image.dtype
((2, 2, 16, 64, 64), dtype('uint16'))
>>> sorted(set(movie.points["channel"]))
[0, 1]
"""

from napari_kinetochores.simulate.layouts import reference_layout_um
from napari_kinetochores.simulate.movies import SimulatedMovie, simulate_movie
from napari_kinetochores.simulate.params import (
    LAYOUTS,
    NOISE_MODELS,
    OUTPUT_DTYPES,
    RENDER_STYLES,
    SNR_LEVELS,
    SimulationParams,
)
from napari_kinetochores.simulate.randomise import (
    DomainRandomisation,
    random_params,
    sample_params,
)
from napari_kinetochores.simulate.rendering import render_spots

__all__ = [
    "LAYOUTS",
    "NOISE_MODELS",
    "OUTPUT_DTYPES",
    "RENDER_STYLES",
    "SNR_LEVELS",
    "DomainRandomisation",
    "SimulatedMovie",
    "SimulationParams",
    "random_params",
    "reference_layout_um",
    "render_spots",
    "sample_params",
    "simulate_movie",
]
