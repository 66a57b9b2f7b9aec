"""Pretrained weights for every backbone: safe reading, conversion, adaptation, loading.

Backbone-agnostic: each backbone describes its checkpoints with a :class:`CheckpointSpec`,
which its registration hands over; nothing here imports ``cvt_dense.models``.
"""
from .adapt import Adaptation, adapt_input_conv, adapt_to_model
from .checkpoint_safety import allow_mmengine_checkpoints, mmengine_checkpoints_allowed
from .convert import ConversionResult, add_prefix, convert_checkpoint, unwrap_checkpoint
from .errors import CheckpointError, CheckpointMismatchError, PickleNotAllowedError
from .io import read_checkpoint
from .loader import LoadReport, load_checkpoint_dict, load_pretrained
from .spec import (ArchGuess, CheckpointSpec, detect_backbone, get_spec, register_spec,
                   registered_specs)

__all__ = [
    'Adaptation', 'ArchGuess', 'CheckpointError', 'CheckpointMismatchError', 'CheckpointSpec',
    'ConversionResult', 'LoadReport', 'PickleNotAllowedError', 'adapt_input_conv',
    'adapt_to_model', 'add_prefix', 'allow_mmengine_checkpoints', 'convert_checkpoint',
    'detect_backbone', 'get_spec', 'load_checkpoint_dict', 'load_pretrained',
    'mmengine_checkpoints_allowed', 'read_checkpoint', 'register_spec', 'registered_specs',
    'unwrap_checkpoint'
]
