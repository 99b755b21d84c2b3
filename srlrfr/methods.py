"""The table's rows: how a low-resolution probe is brought back to the crop size.

A method is one of
- ``hr``: the undegraded configuration (the full-resolution column);
- a registered interpolation baseline (``BASELINES``): ``bicubic`` is true
  bicubic; ``bilinear_authors`` is what the authors' "Bicubic" row actually
  ran (their OpenCV resize call put the interpolation flag in the output
  argument's slot, so OpenCV used its default, bilinear; METHOD.md);
- an SRNet trained here, ``<srnet>_lambda<tag>`` (e.g. ``edsr_lambda0.5``);
- an authors' released checkpoint, ``authors_edsr_lambda<tag>``.
Every rule, the aggregation, the report and ``dvc.yaml`` take names from here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

import numpy as np

from .degradation import resize_batch
from .registry import BASELINES

FULL = "hr"
# x4 SR output smaller than the crop (7x6 -> 28x24) is finished with this, as the paper.
SR_FINISH = "bicubic"


@dataclass(frozen=True)
class Baseline:
    name: str
    kernel: str          # a registered resize kernel
    description: str


BASELINES.register("bicubic", Baseline("bicubic", "cv2_bicubic", "true bicubic (OpenCV, no antialiasing)"))
BASELINES.register("bilinear_authors", Baseline(
    "bilinear_authors", "cv2_bilinear", "bilinear: what the authors' 'Bicubic' row ran"))

# The authors' released EDSR checkpoints (srlrfr.data.sources) and their lambda.
AUTHORS_CHECKPOINTS = {"edsr_baseline": 0.0, "edsr_lambda0.5": 0.5}


def lambda_tag(value: float) -> str:
    """Text of a lambda for file names and method names: 0, 0.5, 0.25, 0.00001, 1000000.

    Plain positional decimals (never an exponent), so every value the schema
    accepts matches the ``lam`` wildcard ``[0-9]+(\\.[0-9]+)?``.
    """
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


LAMBDA_PATTERN = r"[0-9]+(\.[0-9]+)?"


@dataclass(frozen=True)
class SRNetId:
    """A trained SRNet's identity: the SRNet (its params name: ``name``, default its type), its
    identity weight λ, and the FNet of its identity loss (None where only the method matters).

    The one formatter and parser of the names on disk: the method ``edsr_lambda0.5`` (an authors'
    checkpoint: ``authors_edsr_lambda0``) and the model folder
    ``models/srnets/<fnet>/<method>``. The rules, dvcsync, the doctor and the report use it.
    """
    srnet: str
    lam: float
    fnet: str | None = None
    authors: bool = False

    # The same names as Snakemake wildcard patterns (workflow/rules/train.smk).
    METHOD = "{srnet}_lambda{lam}"
    FOLDER = "models/srnets/{fnet}/" + METHOD

    @property
    def tag(self) -> str:
        return lambda_tag(self.lam)

    @property
    def method(self) -> str:
        return ("authors_" if self.authors else "") + self.METHOD.format(srnet=self.srnet, lam=self.tag)

    @property
    def folder(self) -> str:
        """Where it is trained: ``models/srnets/<fnet>/<method>`` (never an authors' checkpoint)."""
        if self.fnet is None or self.authors:
            raise ValueError(f"{self.method}: only an SRNet trained here, with its FNet, has a model folder")
        return self.FOLDER.format(fnet=self.fnet, srnet=self.srnet, lam=self.tag)

    @classmethod
    def parse(cls, method: str, fnet: str | None = None) -> SRNetId | None:
        """The identity named by a method (``edsr_lambda0.5``), None for ``hr`` and the baselines."""
        if method == FULL or method in BASELINES:
            return None
        m = _SR.match(method)
        if not m:
            return None
        return cls(m.group("srnet"), float(m.group("lam")), fnet, bool(m.group("authors")))


_SR = re.compile(rf"^(?P<authors>authors_)?(?P<srnet>[a-z0-9_]+?)_lambda(?P<lam>{LAMBDA_PATTERN})$")


def sr_method(srnet: str, lam: float | str) -> str:
    """Method name of an SRNet trained here with identity weight ``lam``."""
    return SRNetId(srnet, float(lam)).method


def authors_method(checkpoint: str) -> str:
    """Method name of an authors' EDSR checkpoint (``edsr_baseline`` -> ``authors_edsr_lambda0``)."""
    return SRNetId("edsr", AUTHORS_CHECKPOINTS[checkpoint], authors=True).method


def authors_checkpoint(method: str) -> str:
    for name in AUTHORS_CHECKPOINTS:
        if authors_method(name) == method:
            return name
    raise KeyError(f"{method!r} is not an authors' checkpoint method "
                   f"({', '.join(authors_method(n) for n in AUTHORS_CHECKPOINTS)})")


def parse_sr(method: str) -> tuple[str, float, bool] | None:
    """(srnet, lambda, authors?) of an SR method name, None for ``hr`` and baselines."""
    sr = SRNetId.parse(method)
    return None if sr is None else (sr.srnet, sr.lam, sr.authors)


def is_sr(method: str) -> bool:
    return SRNetId.parse(method) is not None


def upsample(images: np.ndarray, size_hw: tuple[int, int], baseline: str) -> np.ndarray:
    return resize_batch(images, tuple(size_hw), BASELINES.get(baseline).kernel)


def restore(method: str, probes: np.ndarray, size_hw: tuple[int, int], *, srnet=None,
            batch_size: int = 64, device="cpu") -> np.ndarray:
    """Bring low-resolution probes back to the crop size with ``method``.

    ``srnet`` is ``(model, info)`` from :func:`srlrfr.models.srnet.load_srnet`.
    """
    if probes.shape[1:3] == tuple(size_hw):
        return probes
    if method in BASELINES:
        return upsample(probes, size_hw, method)
    if srnet is None:
        raise ValueError(f"method {method!r} needs an SRNet checkpoint")
    # deferred: loads torch
    from .models.srnet import super_resolve
    model, info = srnet
    sr = super_resolve(model, info, probes, batch_size=batch_size, device=device)
    if sr.shape[1:3] != tuple(size_hw):
        sr = upsample(sr, size_hw, SR_FINISH)
    return sr
