"""Latency, peak memory, MACs and achieved GFLOP/s of our backbones against their peers.

Every registered backbone can be measured (``--backbone`` choices); each registration says
which instance (``benchmark``) and which reference implementation (``peer``):

    --backbone cvt:    CvT-13 features vs transformers.CvtModel (the official attention)
    --backbone convit: ConViT-S block features vs timm's ConVit (built for each square size,
                       with the same weights; timm cannot run non-square inputs)

A backbone registered outside the toolkit is measured with ``--import MODULE`` (the module
that registers it, like a config's ``custom_imports``).

Each (implementation, size) runs in a fresh subprocess so peak memory is its own. Peak memory
is the process's peak RSS during the timed passes (Linux /proc), which includes the ~0.5 GB
of imported libraries both implementations share. The machine's own fp32 matmul throughput
is measured in the same run and gives the roofline time ``2 * MACs / matmul_flops``.

``--compile`` adds a row for ``torch.compile(model)`` (inductor; dynamo sees each backbone
as one graph) with its compile time: the first call, which traces, generates and builds
the kernels, minus the median of the timed calls after it. Each compiled worker starts
with an empty inductor cache of its own, so the compile time is a cold one.

Usage:
    python tools/analysis/benchmark_backbone.py [--backbone NAME] [--import MODULE ...]
        [--sizes 224x224 512x512 800x1344] [--batch 1] [--repeats 3] [--threads 2]
        [--skip-peer] [--bf16] [--backward] [--compile]
"""
import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # cvt_dense without install

OURS = 'cvt_dense'


def parse_size(text):
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w


def build(backbone, impl, size):
    """The model, and the function that runs it on an image batch (None if ``impl`` cannot
    run this size)."""
    import torch

    from cvt_dense.models import get_backbone
    info = get_backbone(backbone)
    torch.manual_seed(0)
    model = info.cls(**info.benchmark)
    model.init_weights()
    if impl == OURS:
        return model, lambda m, x: m(x)
    return info.peer.build(model, size)


def matmul_gflops(n=2048, repeats=5):
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / min(times) / 1e9


def _as_tuple(out):
    return out if isinstance(out, (tuple, list)) else (out, )


def worker(backbone, impl, size, repeats, bf16, backward, batch=1, compiled=False):
    import contextlib

    import torch

    from cvt_dense.analysis.benchmark import proc_status_kb, reset_peak_memory
    from cvt_dense.models.complexity import count_macs
    built = build(backbone, impl, size)
    if built is None:
        return None
    model, run = built
    model.train(backward)
    x = torch.randn(batch, 3, *size)
    macs = float('nan') if backward else count_macs(model.eval(), x)['total']
    model.train(backward)
    if compiled:
        run = torch.compile(run)
    autocast = (torch.autocast('cpu', dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    grad = contextlib.nullcontext() if backward else torch.inference_mode()

    def step():
        outs = _as_tuple(run(model, x))
        if backward:
            sum(o.float().square().mean() for o in outs).backward()

    with grad, autocast:
        # Warm-up at the measured size (timm's relative positions are cached then; a
        # compiled model compiles here).
        start = time.perf_counter()
        step()
        first_s = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        reset_peak_memory(x.device)  # the peak-RSS counter starts at the current RSS
        base_kb = proc_status_kb('VmRSS')
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            step()
            times.append(time.perf_counter() - t)
            model.zero_grad(set_to_none=True)
    peak_kb = proc_status_kb('VmHWM')
    latency = statistics.median(times)
    return dict(impl=impl, size=size, bf16=bf16, compiled=compiled, latency_s=latency,
                compile_s=first_s - latency if compiled else None,
                peak_rss_gb=peak_kb / 1e6, forward_extra_gb=(peak_kb - base_kb) / 1e6,
                gmacs=macs / 1e9)


def run_worker(impl, size, args, bf16=False, compiled=False):
    cmd = [sys.executable, __file__, '--worker', impl, f'{size[0]}x{size[1]}',
           '--backbone', args.backbone, '--repeats', str(args.repeats),
           '--threads', str(args.threads), '--batch', str(args.batch)]
    cmd += ['--bf16'] * bf16 + ['--backward'] * args.backward + ['--compile'] * compiled
    cmd += [item for module in args.imports for item in ('--import', module)]
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as cache:
        if compiled:  # a cold compile: no kernels from an earlier run
            env['TORCHINDUCTOR_CACHE_DIR'] = cache
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def import_backbones(modules):
    """Import the toolkit's backbones and ``modules`` (which may register more); return
    the registered names."""
    from cvt_dense.models import registered_backbones
    for module in modules:
        importlib.import_module(module)
    return [info.name for info in registered_backbones()]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--import', dest='imports', action='append', default=[],
                        metavar='MODULE', help='a module that registers more backbones')
    parser.add_argument('--backbone', help='a registered backbone (default: the first)')
    parser.add_argument('--sizes', nargs='+', default=['224x224', '512x512', '800x1344'])
    parser.add_argument('--batch', type=int, default=1, help='images per pass')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip-peer', '--skip-hf', action='store_true',
                        help='only benchmark cvt_dense')
    parser.add_argument('--bf16', action='store_true', help='add a bf16-autocast cvt_dense row')
    parser.add_argument('--backward', action='store_true',
                        help='time forward + backward (training mode) instead of inference')
    parser.add_argument('--compile', action='store_true',
                        help='add a torch.compile (inductor) cvt_dense row and its compile time')
    parser.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    names = import_backbones(args.imports)
    args.backbone = args.backbone or names[0]
    if args.backbone.lower() not in names:
        parser.error(f'--backbone {args.backbone!r} is not registered; registered: {names}')

    import torch
    torch.set_num_threads(args.threads)
    if args.worker:
        impl, size = args.worker
        print(json.dumps(worker(args.backbone, impl, parse_size(size), args.repeats, args.bf16,
                                args.backward, args.batch, args.compile)))
        return

    from cvt_dense.models import get_backbone
    flops = matmul_gflops()
    peer_info = get_backbone(args.backbone).peer
    peer = peer_info.name if peer_info else None
    mode = 'forward + backward' if args.backward else 'inference'
    print(f'{args.backbone} vs {peer or "no peer"}, {mode}, batch {args.batch}; torch '
          f'{torch.__version__}, {args.threads} threads, fp32 matmul {flops:.0f} GFLOP/s')
    print(f'{"size":>9} {"impl":>18} {"latency s":>10} {"peak RSS GB":>12} '
          f'{"fwd extra GB":>13} {"GMACs":>8} {"GFLOP/s":>8} {"x roofline":>10}'
          + f' {"compile s":>10}' * args.compile)
    for text in args.sizes:
        size = parse_size(text)
        rows = [run_worker(OURS, size, args)]
        if args.bf16:
            rows.append(run_worker(OURS, size, args, bf16=True))
        if args.compile:
            rows.append(run_worker(OURS, size, args, compiled=True))
        if not args.skip_peer and peer is not None:
            row = run_worker(peer, size, args)
            if row is None:
                print(f'{text:>9} {peer:>18} cannot run this size')
            else:
                rows.append(row)
        for r in rows:
            name = r['impl'] + ' bf16' * r['bf16'] + ' compiled' * r['compiled']
            rates = f'{"-":>8} {"-":>8} {"-":>10}'  # MACs are counted for inference only
            if not args.backward:
                rates = (f'{r["gmacs"]:>8.1f} {2 * r["gmacs"] / r["latency_s"]:>8.0f} '
                         f'{r["latency_s"] / (2 * r["gmacs"] / flops):>10.2f}')
            compile_time = '' if not args.compile else (
                f' {r["compile_s"]:>10.1f}' if r['compiled'] else f' {"-":>10}')
            print(f'{text:>9} {name:>18} {r["latency_s"]:>10.3f} {r["peak_rss_gb"]:>12.2f} '
                  f'{r["forward_extra_gb"]:>13.3f} {rates}{compile_time}')
        if rows[-1]['impl'] == peer:
            ours, theirs = rows[0], rows[-1]
            print(f'{text:>9} {"ratio":>18} speed-up '
                  f'{theirs["latency_s"] / ours["latency_s"]:.1f}x, peak RSS '
                  f'{ours["peak_rss_gb"] / theirs["peak_rss_gb"]:.3f} of {peer}, fwd extra '
                  f'{ours["forward_extra_gb"] / max(theirs["forward_extra_gb"], 1e-9):.3f}')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
