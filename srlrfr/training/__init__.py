"""SRNet training with the identity-preserving loss (METHOD.md, "Training").

- ``pyramid``: the scales each step draws from, and the data it gathers;
- ``losses``: the registered losses, the identity loss through the frozen FNet among them;
- ``checkpoint``: resumable, config-guarded state and the loss log;
- ``loop``: ``train_srnet`` and its ``Trainer``, the loop itself.
"""
from .checkpoint import LOG_COLUMNS  # noqa: F401
from .loop import RunControl, TrainOptions, train_srnet  # noqa: F401
from .losses import identity_loss  # noqa: F401
from .pyramid import PYRAMID_FACTORS, SCALE_EXPONENTS, BatchSampler, PyramidData  # noqa: F401
