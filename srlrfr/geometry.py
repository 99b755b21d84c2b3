"""Aligned-face geometries: crop size and the five reference landmarks.

Landmark order everywhere: left eye, right eye, nose tip, left mouth corner,
right mouth corner; coordinates are (x, y) in pixels of the crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .registry import GEOMETRIES


@dataclass(frozen=True)
class Geometry:
    name: str
    height: int
    width: int
    reference: tuple[tuple[float, float], ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def reference_points(self) -> np.ndarray:
        return np.asarray(self.reference, dtype=np.float64)

    def resolution(self, factor: int) -> tuple[int, int]:
        """(h, w) of this crop downsampled by an integer ``factor``."""
        if self.height % factor or self.width % factor:
            raise ValueError(
                f"factor {factor} does not divide the {self.height}x{self.width} crop of geometry {self.name!r}")
        return self.height // factor, self.width // factor

    def resolution_name(self, factor: int) -> str:
        h, w = self.resolution(factor)
        return f"{h}x{w}"


# SphereFace / the paper: 112 high, 96 wide (METHOD.md).
GEOMETRIES.register("sphereface_112x96", Geometry(
    "sphereface_112x96", 112, 96,
    ((30.2946, 51.6963), (65.5318, 51.5014), (48.0252, 71.7366),
     (33.5493, 92.3655), (62.7299, 92.2041)),
))


def get_geometry(name: str) -> Geometry:
    return GEOMETRIES.get(name)
