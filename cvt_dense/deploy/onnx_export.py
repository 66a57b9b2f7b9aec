"""ONNX export of a backbone with dynamic batch, height and width, and its verification.

The dynamo-based exporter is used (``torch.onnx.export(..., dynamo=True)``):
``torch.export`` captures the backbone as one graph whose shape arithmetic (token grids,
ConViT's padding to the patch grid, the run-time ``pos_embed`` resampling) is symbolic in
H and W, and onnxscript translates it to standard ONNX ops at opset 18, the exporter's
lowest (and the first with an antialiased ``Resize``, which ConViT's ``pos_embed``
resampling becomes). ``scaled_dot_product_attention`` with its explicit scale becomes
MatMul/Softmax nodes. While exporting, the toolkit's fused oneDNN linear falls back to
``F.linear`` (``torch.compiler.is_compiling()``), and :func:`check_standard_ops` proves
that nothing CPU-specific reached the graph. The legacy TorchScript exporter is not used:
every registered backbone exports and verifies through the new one.
"""
from typing import Dict, List, Sequence, Tuple

import torch

OPSET = 18
INPUT_NAME = 'image'
# Standard ONNX domains; anything else (ATen fallbacks, com.microsoft, mkldnn) is refused.
STANDARD_DOMAINS = ('', 'ai.onnx')
# The example batch: torch.export keeps a dimension of size 1 static, so tracing with one
# image would fix the batch size.
EXAMPLE_BATCH = 2


def _output_names(num_outputs: int) -> List[str]:
    return [f'level{i}' for i in range(num_outputs)]


@torch.no_grad()
def export_backbone_onnx(backbone: torch.nn.Module, out_file: str,
                         shape: Sequence[int] = (224, 224), in_channels: int = 3) -> List[str]:
    """Export ``backbone`` (image -> tuple of NCHW maps) with dynamic N, H and W.

    Args:
        backbone (nn.Module): The backbone, in eval mode.
        out_file (str): Path of the ``.onnx`` file (weights inside it).
        shape (Sequence[int]): (H, W) of the example input used for tracing. The graph
            serves other sizes too; take one at which every level has at least two rows and
            columns (torch.export treats a side of 1 as a special case).
        in_channels (int): Input channels.

    Returns:
        list[str]: The graph's output names (``level0``, ``level1``, ...).
    """
    example = torch.randn(EXAMPLE_BATCH, in_channels, *shape)
    outputs = backbone(example)
    if isinstance(outputs, torch.Tensor):
        outputs = (outputs,)
    names = _output_names(len(outputs))
    # By position, whatever forward() calls its input; the output sizes follow the input's.
    dynamic_shapes = ({0: 'batch', 2: 'height', 3: 'width'},)
    torch.onnx.export(backbone, (example,), out_file, dynamo=True, opset_version=OPSET,
                      input_names=[INPUT_NAME], output_names=names,
                      dynamic_shapes=dynamic_shapes, external_data=False, verbose=False)
    check_standard_ops(out_file)
    return names


def check_standard_ops(onnx_file: str) -> None:
    """Raise if the graph holds an op outside the standard ONNX domains (or an ATen op).

    Args:
        onnx_file (str): Path of an ``.onnx`` file.

    Raises:
        ValueError: Naming the offending ops.
    """
    import onnx
    model = onnx.load(onnx_file)
    bad = sorted({f'{node.domain}::{node.op_type}' for node in model.graph.node
                  if node.domain not in STANDARD_DOMAINS or node.op_type == 'ATen'
                  or 'mkldnn' in node.op_type.lower()})
    if bad:
        raise ValueError(f'{onnx_file} contains non-standard ops {bad}: a fused or '
                         f'framework-specific kernel leaked into the export')
    onnx.checker.check_model(model)


def relative_difference(actual, expected) -> float:
    """``max|actual - expected| / max|expected|`` of two arrays."""
    expected = torch.as_tensor(expected)
    diff = (torch.as_tensor(actual) - expected).abs().max()
    return float(diff / expected.abs().max().clamp_min(1e-12))


@torch.no_grad()
def verify_onnx(backbone: torch.nn.Module, onnx_file: str,
                shapes: Sequence[Tuple[int, int, int]], in_channels: int = 3,
                seed: int = 0) -> List[Dict]:
    """Run the ONNX graph in onnxruntime and PyTorch on inputs of other sizes and compare.

    Args:
        backbone (nn.Module): The exported backbone, in eval mode.
        onnx_file (str): Its ONNX export.
        shapes (Sequence[tuple]): (N, H, W) of each test input.
        in_channels (int): Input channels.
        seed (int): Seed of the random inputs.

    Returns:
        list[dict]: Per shape: ``shape``, ``output_shapes`` and ``rel_diff``, the largest
        relative difference (see :func:`relative_difference`) over the outputs.
    """
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(onnx_file, options, providers=['CPUExecutionProvider'])
    generator = torch.Generator().manual_seed(seed)
    results = []
    for n, h, w in shapes:
        x = torch.randn(n, in_channels, h, w, generator=generator)
        expected = backbone(x)
        if isinstance(expected, torch.Tensor):
            expected = (expected,)
        actual = session.run(None, {INPUT_NAME: x.numpy()})
        if len(actual) != len(expected):
            raise RuntimeError(f'{onnx_file} returned {len(actual)} outputs, PyTorch '
                               f'{len(expected)}')
        for a, e in zip(actual, expected):
            if tuple(a.shape) != tuple(e.shape):
                raise RuntimeError(f'input {(n, h, w)}: onnxruntime output shape '
                                   f'{tuple(a.shape)} != PyTorch {tuple(e.shape)}')
        results.append(dict(shape=(n, h, w), output_shapes=[tuple(e.shape) for e in expected],
                            rel_diff=max(relative_difference(a, e)
                                         for a, e in zip(actual, expected))))
    return results
