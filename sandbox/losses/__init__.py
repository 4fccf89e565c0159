"""The losses: their formulas (`formulas`), the language that names them (`spec`), the fused
kernels that speed up their gradients (`fused`), the catalogue that describes each for the docs
and the tables (`entries`), and the DIoU authors' code transcribed (`diou_reference`). The
formulas, the spec language and `catalogue` are imported here.
"""
from sandbox._lazy import attach
from sandbox.losses.entries import LossEntry, catalogue  # noqa: F401
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
