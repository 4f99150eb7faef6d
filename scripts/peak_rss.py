"""Run a command and report its peak memory: the main process's RSS and the whole process tree's PSS.

    python scripts/peak_rss.py --json peak.json -- gmv-value --train … --num-workers 2

RSS of a process counts every page it maps, shared ones included, so summing RSS over DataLoader
workers (forked: they share the parent's pages) overcounts; PSS splits each shared page among the
processes that map it, so the tree's PSS sum is the memory the run really holds. RssAnon (from
/proc/PID/status) is the main process's anonymous memory — heap and arrays, where decoded images would
live — without the file-backed pages of the libraries it maps (a CUDA build of torch alone maps ~0.6 GB).
Sampled every `--interval` seconds with psutil; the command's own output passes through.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import psutil


def tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def rss_anon(pid: int) -> int:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--interval", type=float, default=0.25)
    p.add_argument("--json", help="write the numbers here too")
    p.add_argument("command", nargs=argparse.REMAINDER)
    a = p.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd)
    main_proc = psutil.Process(child.pid)
    peak = {"main_rss": 0, "main_rss_anon": 0, "tree_rss_sum": 0, "tree_pss_sum": 0, "max_processes": 0}
    while child.poll() is None:
        rss = pss = 0
        procs = tree(main_proc)
        for q in procs:
            try:
                info = q.memory_full_info()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            rss += info.rss
            pss += info.pss
            if q.pid == child.pid:
                peak["main_rss"] = max(peak["main_rss"], info.rss)
                peak["main_rss_anon"] = max(peak["main_rss_anon"], rss_anon(q.pid))
        peak["tree_rss_sum"] = max(peak["tree_rss_sum"], rss)
        peak["tree_pss_sum"] = max(peak["tree_pss_sum"], pss)
        peak["max_processes"] = max(peak["max_processes"], len(procs))
        time.sleep(a.interval)
    out = {"command": cmd, "returncode": child.returncode, "seconds": round(time.perf_counter() - t0, 1),
           **{k: v for k, v in peak.items()}, **{f"{k}_mib": round(v / 2**20, 1) for k, v in peak.items()
                                                if k != "max_processes"}}
    print(f"[peak_rss] main RSS {out['main_rss_mib']} MiB (anonymous {out['main_rss_anon_mib']} MiB) · tree PSS {out['tree_pss_sum_mib']} MiB · tree RSS sum "
          f"{out['tree_rss_sum_mib']} MiB · {peak['max_processes']} processes at most · {out['seconds']} s",
          file=sys.stderr)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
