"""Environment report: versions, CUDA, and a check that mmcv's compiled ops load.

Run ``python -m cvt_dense.env``; exits non-zero when the ops check fails.
"""
import platform
import sys
from importlib import metadata

PACKAGES = ('torch', 'torchvision', 'mmcv', 'mmengine', 'mmdet', 'mmsegmentation', 'timm',
            'numpy', 'pycocotools', 'cvt_dense')
REBUILD_MMCV = ('MMCV_WITH_OPS=1 {force_cuda}.venv/bin/pip install --no-build-isolation '
                '--no-cache-dir --force-reinstall --no-deps -c requirements/constraints.txt '
                '-r requirements/mmcv.txt')


def package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = 'not installed'
    return versions


def check_mmcv_ops(device: str = 'cpu') -> None:
    """Run a tiny ``nms`` and ``RoIAlign``; raise ``RuntimeError`` naming the fix if they fail."""
    import torch
    try:
        from mmcv.ops import RoIAlign, nms
        boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]],
                             device=device)
        scores = torch.tensor([0.9, 0.8, 0.7], device=device)
        _, keep = nms(boxes, scores, iou_threshold=0.5)
        if sorted(keep.tolist()) != [0, 2]:
            raise RuntimeError(f'nms kept {keep.tolist()}, expected [0, 2]')
        feats = torch.arange(16., device=device).reshape(1, 1, 4, 4)
        rois = torch.tensor([[0., 0., 0., 4., 4.]], device=device)
        out = RoIAlign((2, 2), spatial_scale=1., sampling_ratio=2, aligned=True)(feats, rois)
        if out.shape != (1, 1, 2, 2):
            raise RuntimeError(f'RoIAlign returned shape {tuple(out.shape)}, expected (1,1,2,2)')
    except Exception as err:  # ImportError of mmcv._ext, a missing CUDA kernel, wrong result
        cuda = 'FORCE_CUDA=1 ' if device != 'cpu' else ''
        raise RuntimeError(
            f'mmcv compiled ops do not work on {device}: {err!r}\nRebuild mmcv from the '
            f'repository root with:\n  {REBUILD_MMCV.format(force_cuda=cuda)}') from err


def collect_env() -> dict:
    import torch
    info = {'python': sys.version.split()[0], 'platform': platform.platform()}
    info.update(package_versions())
    info['cuda available'] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info['cuda'] = torch.version.cuda
        info['gpu'] = torch.cuda.get_device_name(0)
    info['torch threads'] = torch.get_num_threads()
    return info


def main() -> int:
    import torch
    for key, value in collect_env().items():
        print(f'{key:>16}: {value}')
    devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    status = 0
    for device in devices:
        try:
            check_mmcv_ops(device)
            print(f'{"mmcv ops":>16}: OK on {device} (nms, RoIAlign)')
        except RuntimeError as err:
            print(f'{"mmcv ops":>16}: FAILED on {device}\n{err}', file=sys.stderr)
            status = 1
    return status


if __name__ == '__main__':
    sys.exit(main())
