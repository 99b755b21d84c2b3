"""How low-resolution faces are made from aligned crops: resize kernels, degradation ops and models."""
from .kernels import downsample, get_kernel, resize_batch  # noqa: F401
from .models import Degradation  # noqa: F401
