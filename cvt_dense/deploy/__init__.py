"""Export of backbones to deployment formats (ONNX)."""
from .onnx_export import (check_standard_ops, export_backbone_onnx, relative_difference,
                          verify_onnx)

__all__ = ['check_standard_ops', 'export_backbone_onnx', 'relative_difference', 'verify_onnx']
