"""Wall time and peak memory of a whole command (by default the demo pipeline), process tree
included: the resident memory of the command and all its descendants is summed every
``--interval`` seconds from /proc (Linux), so two stages running side by side count together.

    .venv/bin/python benchmarks/measure_pipeline.py --output benchmarks/results/demo.json -- \\
        make demo RUNS=/tmp/bench-runs

Prints and writes JSON: wall seconds, peak summed RSS (MiB), the largest single process's peak,
and the command.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry.name))  # parent pid -> children
    return tree


def _rss_bytes(pid: int) -> int:
    try:
        return int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * PAGE
    except OSError:
        return 0


def tree_rss(root: int) -> tuple[int, int]:
    """(summed RSS of ``root`` and its descendants, the largest single RSS), in bytes."""
    tree, stack, total, largest = _children(), [root], 0, 0
    while stack:
        pid = stack.pop()
        rss = _rss_bytes(pid)
        total, largest = total + rss, max(largest, rss)
        stack.extend(tree.get(pid, []))
    return total, largest


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--interval", type=float, default=0.2)
    parser.add_argument("--output", type=Path)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    process = subprocess.Popen(args.command)
    peak_total = peak_single = 0
    while process.poll() is None:
        total, single = tree_rss(process.pid)
        peak_total, peak_single = max(peak_total, total), max(peak_single, single)
        time.sleep(args.interval)
    result = {
        "command": args.command,
        "returncode": process.returncode,
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_tree_rss_mib": round(peak_total / 2**20),
        "peak_single_process_rss_mib": round(peak_single / 2**20),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(result, indent=2), file=sys.stderr)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.exit(main()["returncode"])
