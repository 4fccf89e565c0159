"""The losses: their formulas (`formulas`), the language that names them (`spec`), the fused
kernels that speed up their gradients (`fused`), and the DIoU authors' code transcribed
(`diou_reference`). The formulas and the spec language are imported here.
"""
from sandbox._lazy import attach
from sandbox.losses.formulas import *  # noqa: F401,F403 (every loss, LOSSES and its helpers: formulas.__all__)
from sandbox.losses.spec import (  # noqa: F401
                                 REGISTERED,
                                 WeightedSum,
                                 adopt,
                                 canonical_loss,
                                 get_loss,
                                 on_arrays,
                                 register_loss,
                                 travelling,
)

__getattr__, __dir__ = attach(__name__, __path__)
