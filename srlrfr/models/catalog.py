"""Import every network module so its registry entries exist.

Adding an FNet or SRNet: one file under fnets/ or srnets/ plus one line here.
"""
from .fnets import dlib_resnet, sphereface  # noqa: F401
from .srnets import edsr, imdn  # noqa: F401
