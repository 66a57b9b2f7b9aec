"""ONNX export with dynamic sizes (the dynamo-based exporter): onnxruntime agrees with
PyTorch at other sizes, and the graph holds standard ONNX ops only (no oneDNN kernel leaked
from the inference path)."""
import pytest
import torch

from cvt_dense.deploy import check_standard_ops, export_backbone_onnx, verify_onnx
from cvt_dense.deploy.onnx_export import OPSET
from cvt_dense.models import CvT

onnx = pytest.importorskip('onnx', reason='onnx is not installed (pip install -e .[onnx])')
pytest.importorskip('onnxruntime', reason='onnxruntime is not installed (pip install -e .[onnx])')
pytest.importorskip('onnxscript', reason='onnxscript is not installed (pip install -e .[onnx])')

TINY = dict(embed_dims=[16, 32, 48], num_heads=[1, 2, 3], depths=[1, 1, 2])


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    torch.manual_seed(0)
    backbone = CvT(TINY, drop_path_rate=0., out_indices=(0, 1, 2)).eval()
    backbone.init_weights()
    # Non-trivial BatchNorm statistics, folded into the convs at inference.
    for m in backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.)
    path = str(tmp_path_factory.mktemp('onnx') / 'cvt.onnx')
    names = export_backbone_onnx(backbone, path, shape=(64, 64))
    return backbone, path, names


def test_matches_pytorch_at_other_sizes(exported):
    backbone, path, names = exported
    assert names == ['level0', 'level1', 'level2']
    # non-square, odd, and a batch of two; none is the 64x64 export size
    results = verify_onnx(backbone, path, [(1, 96, 160), (1, 75, 101), (2, 48, 48)])
    assert results[1]['output_shapes'] == [(1, 16, 19, 25), (1, 32, 10, 13), (1, 48, 5, 7)]
    assert results[2]['output_shapes'][0] == (2, 16, 12, 12)
    for r in results:
        assert r['rel_diff'] <= 1e-4, r


def test_graph_has_only_standard_ops(exported):
    _, path, _ = exported
    model = onnx.load(path)
    ops = {(n.domain, n.op_type) for n in model.graph.node}
    assert all(domain in ('', 'ai.onnx') for domain, _ in ops), ops
    assert not any('mkldnn' in op.lower() or op == 'ATen' for _, op in ops), ops
    assert ('', 'Softmax') in ops and ('', 'MatMul') in ops  # attention, decomposed
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ['batch', '', 'height', 'width']
    # The dynamo exporter's opset (the legacy TorchScript one wrote 17).
    assert {o.domain: o.version for o in model.opset_import}[''] == OPSET == 18


def test_convit_matches_pytorch_at_other_sizes(tmp_path):
    """ConViT: padding to the patch grid, GPSA on the true grid and the run-time pos_embed
    resampling (antialiased bicubic: an antialiased Resize, opset 18) all follow dynamic
    sizes."""
    from convit_oracle import TINY_CONVIT, randomize_convit_
    from cvt_dense.models import ConViT
    backbone = randomize_convit_(ConViT(TINY_CONVIT, out_indices=(1, 3),
                                        drop_path_rate=0.)).eval()
    path = str(tmp_path / 'convit.onnx')
    assert export_backbone_onnx(backbone, path, shape=(64, 64)) == ['level0', 'level1']
    check_standard_ops(path)
    (resize,) = [n for n in onnx.load(path).graph.node if n.op_type == 'Resize']
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}
    assert (attributes['mode'], attributes['antialias']) == (b'cubic', 1)
    # non-square, odd (padded to 5 x 7 patches), a batch of two, and above the 224 grid
    results = verify_onnx(backbone, path, [(1, 96, 160), (1, 75, 101), (2, 48, 48),
                                           (1, 250, 333)])
    assert [r['output_shapes'][0] for r in results] == [(1, 32, 6, 10), (1, 32, 5, 7),
                                                        (2, 32, 3, 3), (1, 32, 16, 21)]
    for r in results:
        assert r['rel_diff'] <= 1e-4, r


def test_convit_legacy_torchscript_export(tmp_path):
    """The legacy exporter (mmdeploy's) has no antialiased resize: ConViT resamples its
    pos_embed with matrix products there, and the graph still follows dynamic sizes."""
    import warnings

    from convit_oracle import TINY_CONVIT, randomize_convit_
    from cvt_dense.models import ConViT
    backbone = randomize_convit_(ConViT(TINY_CONVIT, out_indices=(3,),
                                        drop_path_rate=0.)).eval()
    path = str(tmp_path / 'convit_legacy.onnx')
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the TracerWarnings of the input checks
        torch.onnx.export(backbone, (torch.randn(1, 3, 64, 64),), path, dynamo=False,
                          opset_version=17, input_names=['image'],
                          dynamic_axes={'image': {0: 'batch', 2: 'height', 3: 'width'}})
    check_standard_ops(path)
    results = verify_onnx(backbone, path, [(1, 75, 101), (1, 250, 333)])
    assert [r['output_shapes'][0] for r in results] == [(1, 32, 5, 7), (1, 32, 16, 21)]
    for r in results:
        assert r['rel_diff'] <= 1e-4, r


def test_leaked_kernel_is_refused(tmp_path):
    from onnx import TensorProto, helper
    node = helper.make_node('_linear_pointwise', ['x'], ['y'], domain='mkldnn')
    graph = helper.make_graph(
        [node], 'g', [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17),
                                                    helper.make_opsetid('mkldnn', 1)])
    path = str(tmp_path / 'bad.onnx')
    onnx.save(model, path)
    with pytest.raises(ValueError, match='mkldnn::_linear_pointwise'):
        check_standard_ops(path)
