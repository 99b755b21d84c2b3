"""How low-resolution faces are made from aligned crops (resize kernels)."""
from .kernels import downsample, get_kernel, resize_batch  # noqa: F401
