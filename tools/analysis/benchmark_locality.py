"""Time and peak memory of the locality analysis against a plain forward pass.

For each registered backbone's ``benchmark`` instance (CvT-13; ConViT-S), random weights,
one image per size: a warm-up forward pass, then the timed forward pass and the timed
``measure_locality`` (which runs the forward pass too, recomputing every attention layer's
scores a chunk of query rows at a time). Peak memory is the process's peak RSS on a CPU
(reset before each measurement, Linux) or CUDA's ``max_memory_allocated``; "extra" is the
peak minus the memory before it. The last column is the largest (heads x queries x keys)
fp32 score matrix of one layer, the memory a dense computation would need at least once.
Each backbone runs in its own subprocess.

Usage:
    python tools/analysis/benchmark_locality.py [--backbone NAME ...] [--sizes 800x1344]
        [--threads 2] [--device cpu|cuda] [--chunk-elements N] [--import MODULE ...]
"""
import argparse
import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install


def parse_size(text):
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w


def worker(backbone, size, device, chunk_elements):
    import torch

    from cvt_dense.analysis.benchmark import peak_memory_bytes, proc_status_kb, \
        reset_peak_memory
    from cvt_dense.analysis.locality import measure_locality
    from cvt_dense.models import get_backbone
    from cvt_dense.models.layers import observe_attention
    device = torch.device(device)
    info = get_backbone(backbone)
    torch.manual_seed(0)
    model = info.cls(**info.benchmark)
    model.init_weights()
    model.to(device).eval()
    x = torch.randn(1, 3, *size, device=device)
    largest = []
    with torch.no_grad(), observe_attention(
            lambda q, k, v, scale: largest.append(q.shape[1] * q.shape[2] * k.shape[2])):
        model(x)  # warm-up; and the attention shapes

    def current():
        if device.type == 'cuda':
            return torch.cuda.memory_allocated(device)
        return proc_status_kb('VmRSS') * 1024

    row = dict(backbone=backbone, size=size, layers=len(largest),
               dense_gb=4 * max(largest) / 1e9)
    for name, run in (('forward', lambda: model(x)),
                      ('locality', lambda: measure_locality(model, x, chunk_elements))):
        reset_peak_memory(device)
        base = current()
        start = time.perf_counter()
        with torch.no_grad():
            run()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        row[f'{name}_s'] = time.perf_counter() - start
        row[f'{name}_peak_gb'] = peak_memory_bytes(device) / 1e9
        row[f'{name}_extra_gb'] = (peak_memory_bytes(device) - base) / 1e9
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--import', dest='imports', action='append', default=[],
                        metavar='MODULE', help='a module that registers more backbones')
    parser.add_argument('--backbone', nargs='+', help='registered backbones (default: all)')
    parser.add_argument('--sizes', nargs='+', default=['800x1344'])
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--chunk-elements', type=int, default=None,
                        help='scores computed at once (default: the library\'s)')
    parser.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for module in args.imports:
        importlib.import_module(module)
    import torch

    from cvt_dense.analysis.locality import DEFAULT_CHUNK_ELEMENTS
    from cvt_dense.models import registered_backbones
    torch.set_num_threads(args.threads)
    chunk_elements = args.chunk_elements or DEFAULT_CHUNK_ELEMENTS
    if args.worker:
        backbone, size = args.worker
        print(json.dumps(worker(backbone, parse_size(size), args.device, chunk_elements)))
        return
    names = args.backbone or [info.name for info in registered_backbones()]
    print(f'locality analysis vs forward, 1 image, {args.device}, {args.threads} threads, '
          f'chunks of {chunk_elements} scores; torch {torch.__version__}')
    print(f'{"backbone":>10} {"size":>9} {"layers":>6} {"fwd s":>7} {"fwd extra GB":>12} '
          f'{"locality s":>10} {"loc peak GB":>11} {"loc extra GB":>12} '
          f'{"dense scores GB":>15}')
    for name in names:
        for text in args.sizes:
            cmd = [sys.executable, __file__, '--worker', name, text, '--threads',
                   str(args.threads), '--device', args.device, '--chunk-elements',
                   str(chunk_elements)]
            cmd += [item for module in args.imports for item in ('--import', module)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f'{name:>10} {text:>9} {r["layers"]:>6} {r["forward_s"]:>7.2f} '
                  f'{r["forward_extra_gb"]:>12.3f} {r["locality_s"]:>10.2f} '
                  f'{r["locality_peak_gb"]:>11.2f} {r["locality_extra_gb"]:>12.3f} '
                  f'{r["dense_gb"]:>15.2f}')
            sys.stdout.flush()


if __name__ == '__main__':
    main()
