"""Import every dataset module so its registry entry exists (one line per dataset)."""
from . import celeba, faces, lfw, tinyface, xqlfw  # noqa: F401
