"""Latency, peak memory, MACs and achieved GFLOP/s of CvT-13 features vs transformers.CvtModel.

Each (implementation, size) runs in a fresh subprocess so peak memory is its own. Peak memory
is the process's peak RSS during the timed forward passes (Linux /proc), which includes
the ~0.5 GB of imported libraries both implementations share. The machine's own fp32
matmul throughput is measured in the same run and gives the roofline time
``2 * MACs / matmul_flops``.

Usage:
    python tools/analysis/benchmark_backbone.py [--sizes 224x224 512x512 800x1344]
        [--repeats 3] [--threads 2] [--skip-hf] [--bf16]
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

IMPLS = ('cvt_dense', 'transformers')


def parse_size(text):
    h, w = (int(v) for v in text.lower().split('x'))
    return h, w


def build(impl):
    if impl == 'cvt_dense':
        from cvt_dense.models import CvT
        return CvT('cvt-13', drop_path_rate=0.).eval()
    from transformers import CvtConfig, CvtModel
    return CvtModel(CvtConfig()).eval()


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


def worker(impl, size, repeats, bf16):
    import contextlib

    import torch

    from cvt_dense.analysis.benchmark import proc_status_kb, reset_peak_memory
    from cvt_dense.models.complexity import count_macs
    model = build(impl)
    x = torch.randn(1, 3, *size)
    macs = count_macs(model, x)['total']
    ctx = (torch.autocast('cpu', dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())
    with torch.inference_mode(), ctx:
        model(torch.randn(1, 3, 224, 224))  # warm-up
        reset_peak_memory(x.device)  # the peak-RSS counter starts at the current RSS
        base_kb = proc_status_kb('VmRSS')
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    peak_kb = proc_status_kb('VmHWM')
    return dict(impl=impl, size=size, bf16=bf16, latency_s=statistics.median(times),
                peak_rss_gb=peak_kb / 1e6, forward_extra_gb=(peak_kb - base_kb) / 1e6,
                gmacs=macs / 1e9)


def run_worker(impl, size, args, bf16=False):
    cmd = [sys.executable, __file__, '--worker', impl, f'{size[0]}x{size[1]}',
           '--repeats', str(args.repeats), '--threads', str(args.threads)] + (['--bf16'] if bf16 else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', nargs='+', default=['224x224', '512x512', '800x1344'])
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--skip-hf', action='store_true', help='only benchmark cvt_dense')
    parser.add_argument('--bf16', action='store_true', help='add a bf16-autocast cvt_dense row')
    parser.add_argument('--worker', nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    if args.worker:
        impl, size = args.worker
        print(json.dumps(worker(impl, parse_size(size), args.repeats, args.bf16)))
        return

    flops = matmul_gflops()
    print(f'torch {torch.__version__}, {args.threads} threads, fp32 matmul {flops:.0f} GFLOP/s')
    header = (f'{"size":>9} {"impl":>16} {"latency s":>10} {"peak RSS GB":>12} '
              f'{"fwd extra GB":>13} {"GMACs":>8} {"GFLOP/s":>8} {"x roofline":>10}')
    print(header)
    for text in args.sizes:
        size = parse_size(text)
        rows = [run_worker('cvt_dense', size, args)]
        if args.bf16:
            rows.append(run_worker('cvt_dense', size, args, bf16=True))
        if not args.skip_hf:
            rows.append(run_worker('transformers', size, args))
        for r in rows:
            achieved = 2 * r['gmacs'] / r['latency_s']
            name = r['impl'] + (' bf16' if r['bf16'] else '')
            print(f'{text:>9} {name:>16} {r["latency_s"]:>10.3f} {r["peak_rss_gb"]:>12.2f} '
                  f'{r["forward_extra_gb"]:>13.3f} {r["gmacs"]:>8.1f} {achieved:>8.0f} '
                  f'{r["latency_s"] / (2 * r["gmacs"] / flops):>10.2f}')
        if not args.skip_hf:
            ours, hf = rows[0], rows[-1]
            print(f'{text:>9} {"ratio":>16} speed-up {hf["latency_s"] / ours["latency_s"]:.1f}x, '
                  f'peak RSS {ours["peak_rss_gb"] / hf["peak_rss_gb"]:.3f} of transformers, '
                  f'forward extra {ours["forward_extra_gb"] / max(hf["forward_extra_gb"], 1e-9):.3f}')
        sys.stdout.flush()


if __name__ == '__main__':
    main()
