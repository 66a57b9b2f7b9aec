"""Latency, peak memory, MACs and achieved GFLOP/s of our backbones against their peers.

    --backbone cvt:    CvT-13 features vs transformers.CvtModel (the official attention)
    --backbone convit: ConViT-S block features vs timm's ConVit (built for each square size,
                       with the same weights; timm cannot run non-square inputs)

Each (implementation, size) runs in a fresh subprocess so peak memory is its own. Peak memory
is the process's peak RSS during the timed passes (Linux /proc), which includes the ~0.5 GB
of imported libraries both implementations share. The machine's own fp32 matmul throughput
is measured in the same run and gives the roofline time ``2 * MACs / matmul_flops``.

Usage:
    python tools/analysis/benchmark_backbone.py [--backbone cvt|convit]
        [--sizes 224x224 512x512 800x1344] [--repeats 3] [--threads 2] [--skip-peer]
        [--bf16] [--backward]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

PEERS = {'cvt': 'transformers', 'convit': 'timm'}
OURS = 'cvt_dense'


def parse_size(text):
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w


def build(backbone, impl, size):
    """The model, and the function that runs it on an image batch."""
    if backbone == 'cvt':
        if impl == OURS:
            from cvt_dense.models import CvT
            return CvT('cvt-13', drop_path_rate=0.), lambda m, x: m(x)
        from transformers import CvtConfig, CvtModel
        return CvtModel(CvtConfig()), lambda m, x: m(x).last_hidden_state
    import timm

    from cvt_dense.models import ConViT
    from cvt_dense.weights import load_pretrained
    square = size[0] == size[1]
    peer = timm.create_model('convit_small', img_size=size[0] if square else 224,
                             num_classes=0)
    if impl != OURS:
        return peer, lambda m, x: m.forward_features(x)
    model = ConViT('convit-small', out_indices=(2, 5, 8, 11), out_norm=False,
                   drop_path_rate=0., pretrain_img_size=size[0] if square else 224)
    load_pretrained(model, peer.state_dict())  # the same weights as the peer
    return model, lambda m, x: m(x)


def can_run(backbone, impl, size):
    return not (backbone == 'convit' and impl != OURS and size[0] != size[1])


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


def worker(backbone, impl, size, repeats, bf16, backward):
    import contextlib

    import torch

    from cvt_dense.analysis.benchmark import proc_status_kb, reset_peak_memory
    from cvt_dense.models.complexity import count_macs
    model, run = build(backbone, impl, size)
    model.train(backward)
    x = torch.randn(1, 3, *size)
    macs = float('nan') if backward else count_macs(model.eval(), x)['total']
    model.train(backward)
    autocast = (torch.autocast('cpu', dtype=torch.bfloat16) if bf16
                else contextlib.nullcontext())
    grad = contextlib.nullcontext() if backward else torch.inference_mode()

    def step():
        outs = _as_tuple(run(model, x))
        if backward:
            sum(o.float().square().mean() for o in outs).backward()

    with grad, autocast:
        step()  # warm-up at the measured size (timm's relative positions are cached then)
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
    return dict(impl=impl, size=size, bf16=bf16, latency_s=statistics.median(times),
                peak_rss_gb=peak_kb / 1e6, forward_extra_gb=(peak_kb - base_kb) / 1e6,
                gmacs=macs / 1e9)


def run_worker(impl, size, args, bf16=False):
    cmd = [sys.executable, __file__, '--worker', impl, f'{size[0]}x{size[1]}',
           '--backbone', args.backbone, '--repeats', str(args.repeats),
           '--threads', str(args.threads)]
    cmd += ['--bf16'] * bf16 + ['--backward'] * args.backward
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--backbone', choices=sorted(PEERS), default='cvt')
    parser.add_argument('--sizes', nargs='+', default=['224x224', '512x512', '800x1344'])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip-peer', '--skip-hf', action='store_true',
                        help='only benchmark cvt_dense')
    parser.add_argument('--bf16', action='store_true', help='add a bf16-autocast cvt_dense row')
    parser.add_argument('--backward', action='store_true',
                        help='time forward + backward (training mode) instead of inference')
    parser.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    if args.worker:
        impl, size = args.worker
        print(json.dumps(worker(args.backbone, impl, parse_size(size), args.repeats, args.bf16,
                                args.backward)))
        return

    flops = matmul_gflops()
    peer = PEERS[args.backbone]
    mode = 'forward + backward' if args.backward else 'inference'
    print(f'{args.backbone} vs {peer}, {mode}; torch {torch.__version__}, {args.threads} '
          f'threads, fp32 matmul {flops:.0f} GFLOP/s')
    print(f'{"size":>9} {"impl":>16} {"latency s":>10} {"peak RSS GB":>12} '
          f'{"fwd extra GB":>13} {"GMACs":>8} {"GFLOP/s":>8} {"x roofline":>10}')
    for text in args.sizes:
        size = parse_size(text)
        rows = [run_worker(OURS, size, args)]
        if args.bf16:
            rows.append(run_worker(OURS, size, args, bf16=True))
        if not args.skip_peer and can_run(args.backbone, peer, size):
            rows.append(run_worker(peer, size, args))
        for r in rows:
            name = r['impl'] + (' bf16' if r['bf16'] else '')
            rates = f'{"-":>8} {"-":>8} {"-":>10}'  # MACs are counted for inference only
            if not args.backward:
                rates = (f'{r["gmacs"]:>8.1f} {2 * r["gmacs"] / r["latency_s"]:>8.0f} '
                         f'{r["latency_s"] / (2 * r["gmacs"] / flops):>10.2f}')
            print(f'{text:>9} {name:>16} {r["latency_s"]:>10.3f} {r["peak_rss_gb"]:>12.2f} '
                  f'{r["forward_extra_gb"]:>13.3f} {rates}')
        if rows[-1]['impl'] == peer:
            ours, theirs = rows[0], rows[-1]
            print(f'{text:>9} {"ratio":>16} speed-up '
                  f'{theirs["latency_s"] / ours["latency_s"]:.1f}x, peak RSS '
                  f'{ours["peak_rss_gb"] / theirs["peak_rss_gb"]:.3f} of {peer}, fwd extra '
                  f'{ours["forward_extra_gb"] / max(theirs["forward_extra_gb"], 1e-9):.3f}')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
