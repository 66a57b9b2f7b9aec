"""Convert a backbone checkpoint (CvT: official, Hugging Face; ConViT: official, timm;
mmdet/mmseg training checkpoints; ours) to our key names. The backbone is detected from
the keys.

Examples:
    # official release -> backbone-only file for init_cfg=dict(type='Pretrained', ...)
    python tools/convert_weights.py CvT-13-224x224-IN-1k.pth cvt13_in1k.pth
    # Hugging Face directory -> file with keys under backbone., for load_from=...
    python tools/convert_weights.py ./cvt-21 cvt21_backbone.pth --prefix-backbone
    # also check that the result loads into a given arch
    python tools/convert_weights.py model.safetensors cvt13.safetensors --check-arch cvt-13
    # timm ConViT-S -> backbone-only file
    python tools/convert_weights.py convit_small.safetensors convit_small.pth
"""
import argparse
import os
import sys
import tempfile
from pathlib import Path

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='checkpoint file, Hugging Face model directory or URL')
    parser.add_argument('dst', help='output file (.pth, or .safetensors for safetensors)')
    parser.add_argument('--prefix-backbone', action='store_true',
                        help='write keys as backbone.<name>, ready for load_from')
    parser.add_argument('--src-prefix', default=None,
                        help='only convert keys under this prefix of SRC (default: '
                             'backbone. when present)')
    parser.add_argument('--backbone', default=None, metavar='NAME',
                        help='the backbone SRC holds, e.g. CvT or ConViT (default: detected '
                             'from the keys)')
    parser.add_argument('--check-arch', default=None, metavar='ARCH',
                        help='verify that the result loads strictly into the backbone built '
                             'with arch=ARCH')
    parser.add_argument('--allow-pickle', action='store_true',
                        help='allow full unpickling of SRC (only for trusted files)')
    parser.add_argument('--force', action='store_true', help='overwrite an existing DST')
    parser.add_argument('-v', '--verbose', action='store_true', help='print every renaming')
    return parser.parse_args(argv)


def save(state_dict, dst: Path):
    """Write atomically (temp file + rename) so an interrupted run leaves no partial DST."""
    import torch
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f'.{dst.name}.', suffix='.tmp')
    os.close(fd)
    try:
        if dst.suffix == '.safetensors':
            from safetensors.torch import save_file
            save_file({k: v.contiguous().clone() for k, v in state_dict.items()}, tmp)
        else:
            torch.save(state_dict, tmp)
        os.replace(tmp, dst)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def find_spec(raw, backbone, prefix):
    """The checkpoint description of ``backbone``, or of the backbone the keys belong to."""
    import cvt_dense.models  # noqa: F401  (registers every backbone's description)
    from cvt_dense.weights import (CheckpointError, detect_backbone, get_spec,
                                   registered_specs, unwrap_checkpoint)
    if backbone:
        try:
            return get_spec(backbone)
        except KeyError as e:
            raise CheckpointError(e.args[0]) from None
    state_dict = unwrap_checkpoint(raw, prefix)[0]
    found = detect_backbone(state_dict)
    if found is None:
        names = [spec.backbone for spec in registered_specs()]
        raise CheckpointError(f'the keys belong to none of the backbones {names}; first '
                              f'keys: {sorted(state_dict)[:5]}')
    return found[0]


def check_arch(raw, state_dict, spec, arch: str, src: str):
    """Raise with the offending keys and shapes unless SRC loads strictly into ``arch``."""
    from cvt_dense.models import get_backbone
    from cvt_dense.weights import load_checkpoint_dict
    model_cls = get_backbone(spec.backbone).cls
    in_channels = state_dict[spec.input_conv].shape[1] if spec.input_conv in state_dict else 3
    load_checkpoint_dict(model_cls(arch=arch, in_channels=in_channels), raw, source=src)


def main(argv=None) -> int:
    args = parse_args(argv)
    dst = Path(args.dst)
    if dst.exists() and not args.force:
        print(f'error: {dst} exists; pass --force to overwrite it', file=sys.stderr)
        return 1
    # Imported here so that argument errors and the overwrite refusal answer at once.
    from cvt_dense.weights import CheckpointError, add_prefix, convert_checkpoint, read_checkpoint
    try:
        raw = read_checkpoint(args.src, allow_pickle=args.allow_pickle)
        spec = find_spec(raw, args.backbone, args.src_prefix)
        result = convert_checkpoint(raw, spec, prefix=args.src_prefix)
        if args.check_arch:
            check_arch(raw, result.state_dict, spec, args.check_arch, args.src)
    except (CheckpointError, ValueError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1

    print(f'source: {args.src} ({spec.backbone}, {result.source_format} format'
          + (f', unwrapped {" -> ".join(result.wrapper)}' if result.wrapper else '') + ')')
    arch = spec.guess_arch(result.state_dict)
    print(f'architecture: {arch.preset or "custom"} ({arch.description})')
    print(f'mapped: {len(result.renamed)} renamed, '
          f'{len(result.state_dict) - len(result.renamed)} kept as they were')
    for old, new in result.renamed if args.verbose else result.renamed[:3]:
        print(f'  {old} -> {new}')
    if not args.verbose and len(result.renamed) > 3:
        print(f'  ... ({len(result.renamed) - 3} more, -v lists all)')
    print(f'dropped (classifier only): {len(result.dropped_classifier)}'
          + ''.join(f'\n  {k}' for k in result.dropped_classifier))
    if result.dropped_other:
        print(f'dropped (not backbone): {len(result.dropped_other)}'
              + ''.join(f'\n  {k}' for k in result.dropped_other[:20])
              + ('\n  ...' if len(result.dropped_other) > 20 else ''))
    if result.unmapped:
        print(f'warning: {len(result.unmapped)} keys unknown to the name table were kept '
              f'unchanged: {result.unmapped[:5]}', file=sys.stderr)
    if args.check_arch:
        print(f'check: loads strictly into {spec.backbone}(arch={args.check_arch!r})')

    state = add_prefix(result.state_dict) if args.prefix_backbone else result.state_dict
    save(state, dst)
    print(f'wrote {len(state)} tensors to {dst}'
          + (' (keys prefixed with backbone.)' if args.prefix_backbone else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
