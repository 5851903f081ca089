"""The machine's fp32 matrix-product throughput on ``--threads`` torch threads: a loop of square
``--size`` products, timed in ``--repeats`` blocks after a warm-up; prints one JSON object with
every block's GFLOP/s and their median (the reference the step benchmarks' achieved GFLOP/s are
compared with, measured in the same run)."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--products", type=int, default=8, help="products per timed block")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(args.size, args.size, generator=generator)
    b = torch.randn(args.size, args.size, generator=generator)
    out = torch.empty(args.size, args.size)
    for _ in range(3):  # warm-up: thread pool, caches
        torch.mm(a, b, out=out)
    rates = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for _ in range(args.products):
            torch.mm(a, b, out=out)
        elapsed = time.perf_counter() - started
        rates.append(2 * args.size**3 * args.products / elapsed / 1e9)
    result = {
        "size": args.size,
        "threads": torch.get_num_threads(),
        "gflops_per_s": [round(r, 2) for r in rates],
        "median_gflops_per_s": statistics.median(rates),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
