"""Pretrained weights for CvT: reading, key conversion, interpolation and loading."""
from .convert import (CLASSIFIER_ONLY_PREFIXES, HEAD_NAME_TABLE, STAGE_NAME_TABLE,
                      ConversionResult, add_prefix, convert_checkpoint, convert_to_cvt,
                      detect_format, hf_to_official_key, infer_arch, official_to_hf_key,
                      unwrap_checkpoint)
from .errors import CheckpointError, CheckpointMismatchError, PickleNotAllowedError
from .interpolate import adapt_input_conv, adapt_to_model, pos_embed_as_map
from .io import read_checkpoint
from .loader import LoadReport, load_checkpoint_dict, load_pretrained

__all__ = [
    'CLASSIFIER_ONLY_PREFIXES', 'HEAD_NAME_TABLE', 'STAGE_NAME_TABLE', 'CheckpointError',
    'CheckpointMismatchError', 'ConversionResult', 'LoadReport', 'PickleNotAllowedError',
    'adapt_input_conv', 'adapt_to_model', 'add_prefix', 'convert_checkpoint',
    'convert_to_cvt', 'detect_format', 'hf_to_official_key', 'infer_arch',
    'load_checkpoint_dict', 'load_pretrained', 'official_to_hf_key', 'pos_embed_as_map',
    'read_checkpoint', 'unwrap_checkpoint'
]
