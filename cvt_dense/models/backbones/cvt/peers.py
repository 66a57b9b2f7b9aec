"""The reference CvT that ``benchmark_backbone`` measures ours against."""
from typing import Callable, Tuple

from torch import nn


def transformers_cvt(model: nn.Module, size: Tuple[int, int]) -> Tuple[nn.Module, Callable]:
    """``transformers.CvtModel`` with its default (CvT-13) config, random weights: the
    official attention, which forms the whole query x key matrix."""
    from transformers import CvtConfig, CvtModel
    return CvtModel(CvtConfig()), lambda peer, images: peer(images).last_hidden_state
