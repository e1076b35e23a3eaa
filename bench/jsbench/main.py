"""bench/run: runs the workloads under every allocator and writes the tables.

See bench/README.md for the workloads, the flags and how to read the output.
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import time

from . import allocators as allocs
from . import measure, report, workloads

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run",
        description="Run the jsmalloc benchmark workloads under jsmalloc, glibc, mimalloc, "
                    "jemalloc and tcmalloc, and write bench/results/latest.{md,csv} and "
                    "SVG charts.")
    p.add_argument("--only", metavar="PATTERN",
                   help="comma-separated workload patterns: a substring of the name or "
                        "label (seed, larson-t4) or a glob (seed-*, *-t8)")
    p.add_argument("--allocators", metavar="A,B",
                   help=f"comma-separated, from {','.join(allocs.KNOWN)} (default: "
                        f"{','.join(allocs.ORDER)})")
    p.add_argument("--runs", type=int, metavar="N", help="runs per cell (default 5)")
    p.add_argument("--threads", metavar="LIST",
                   help="thread counts for the multi-threaded workloads, e.g. 1,2,4 "
                        "(default: 1,2,4,8, and 16,64 for the thread-centred ones)")
    p.add_argument("--full", action="store_true",
                   help="published sizes (the seed's 800,000 items x 10 iterations); slow")
    p.add_argument("--scale", type=float, default=1.0, metavar="F",
                   help="multiply every workload's scale by F")
    p.add_argument("--callgrind", action="store_true",
                   help="count instructions per operation with valgrind --tool=callgrind "
                        "(single-threaded workloads) instead of timing")
    p.add_argument("--smoke", action="store_true",
                   help="tiny scale, 1 run, glibc only unless --allocators: checks the "
                        "runner and its outputs (used by CTest)")
    p.add_argument("--out", metavar="DIR", default=os.path.join(BENCH_DIR, "results"),
                   help="where to write latest.md, latest.csv, charts (default bench/results)")
    p.add_argument("--bin-dir", metavar="DIR",
                   default=os.path.join(REPO_DIR, "build", "release", "bench"),
                   help="workload binaries (default build/release/bench)")
    p.add_argument("--jsmalloc", metavar="PATH",
                   default=os.path.join(REPO_DIR, "build", "release", "libjsmalloc.so"),
                   help="the jsmalloc library to preload (default build/release/libjsmalloc.so)")
    p.add_argument("--reference", default="mimalloc", metavar="NAME",
                   help="allocator the ratios are relative to (default mimalloc)")
    p.add_argument("--timeout", type=float, metavar="S",
                   help="per-run timeout in seconds (default 120; --full 1800; callgrind 900)")
    p.add_argument("--seed", type=int, default=1, help="random seed passed to every workload")
    p.add_argument("--list", action="store_true", help="list the workloads and exit")
    return p.parse_args(argv)


class Progress:
    """One status line on stderr: rewritten in place on a terminal, else one per run."""

    def __init__(self, total):
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()

    def show(self, text):
        elapsed = time.monotonic() - self.t0
        eta = ""
        if self.done:
            left = elapsed / self.done * (self.total - self.done)
            eta = f" eta {int(left // 60)}:{int(left % 60):02d}"
        line = (f"[{self.done + 1:4d}/{self.total} {int(elapsed // 60)}:{int(elapsed % 60):02d}"
                f"{eta}] {text}")
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self):
        if self.tty:
            sys.stderr.write("\n")
        elapsed = time.monotonic() - self.t0
        sys.stderr.write(f"bench/run: {self.done} runs in {int(elapsed // 60)}:"
                         f"{int(elapsed % 60):02d}\n")


def workload_argv(bin_dir, cfg, scale, seed, extra=()):
    w = cfg.workload
    argv = [os.path.join(bin_dir, w.binary), *w.args, "--threads", str(cfg.threads),
            "--seed", str(seed), "--scale", f"{scale:g}", *extra]
    return argv


def choose_scale(w, args):
    if args.smoke:
        return w.smoke_scale * args.scale
    if args.full:
        return 1.0 * args.scale
    return w.scale * args.scale


def system_summary():
    cpus = os.cpu_count()
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
                    break
    except OSError:
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    commit = "no commit"
    try:
        c = subprocess.run(["git", "-C", REPO_DIR, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10, check=False)
        if c.returncode == 0:
            commit = c.stdout.strip()
            d = subprocess.run(["git", "-C", REPO_DIR, "status", "--porcelain", "--", "src",
                                "include"], capture_output=True, text=True, timeout=10,
                               check=False)
            if d.stdout.strip():
                commit += " + uncommitted changes"
    except (OSError, subprocess.SubprocessError):
        pass
    return (f"{model or platform.processor()}, {cpus} CPUs, {mem}, Linux "
            f"{platform.release()}; repository at {commit}")


def resolve_allocators(args):
    names = allocs.ORDER
    if args.allocators:
        names = [n.strip() for n in args.allocators.split(",") if n.strip()]
    elif args.smoke:
        names = ["glibc"]
    found = [allocs.find(n, args.jsmalloc) for n in names]
    return found


def pick_reference(args, found):
    avail = [a.name for a in found if a.available]
    if args.reference in avail:
        return args.reference, ""
    if not avail:
        return None, "no allocator available"
    return avail[0], (f"{args.reference} is not in this run or missing; ratios are to "
                      f"{avail[0]}")


def select_configs(args):
    threads = None
    if args.threads:
        try:
            threads = [int(t) for t in args.threads.split(",") if t.strip()]
        except ValueError:
            threads = []
        if not threads or min(threads) < 1:
            sys.stderr.write(f"bench/run: bad --threads {args.threads} (want e.g. 1,2,4)\n")
            sys.exit(2)
    cfgs = workloads.configs(workloads.WORKLOADS, threads, smoke=args.smoke)
    if args.only:
        import fnmatch
        pats = [p.strip() for p in args.only.split(",") if p.strip()]
        # A pattern that is exactly a workload name or row label selects only that one
        # (seed-free is not seed-free-desc); any other pattern is a substring or a glob.
        exact = {p for p in pats
                 if any(p in (c.label, c.workload.name) for c in cfgs)}

        def match(c):
            for p in pats:
                if p in exact:
                    if p in (c.label, c.workload.name):
                        return True
                    continue
                if any(ch in p for ch in "*?["):
                    if fnmatch.fnmatchcase(c.label, p) or fnmatch.fnmatchcase(c.workload.name, p):
                        return True
                elif p in c.label or p in c.workload.name:
                    return True
            return False

        cfgs = [c for c in cfgs if match(c)]
    return cfgs


def launcher(args):
    return os.path.join(args.bin_dir, "bench-launch")


def check_binaries(args, cfgs):
    needed = {c.workload.binary for c in cfgs} | {"bench-launch"}
    missing = sorted(b for b in needed if not os.access(os.path.join(args.bin_dir, b), os.X_OK))
    if missing:
        sys.stderr.write(f"bench/run: workload binaries missing in {args.bin_dir}: "
                         f"{', '.join(missing)}\n  build them: cmake --build build/release "
                         "(or pass --bin-dir)\n")
        return False
    return True


def list_workloads():
    for w in workloads.WORKLOADS:
        t = ",".join(map(str, w.threads))
        print(f"{w.name:16} threads {t:14} scale {w.scale:<6g} {w.what}")


def main(argv):
    args = parse_args(argv)
    if args.list:
        list_workloads()
        return 0
    cfgs = select_configs(args)
    if not cfgs:
        sys.stderr.write(f"bench/run: no workload matches --only {args.only}\n")
        return 2
    if not check_binaries(args, cfgs):
        return 2
    found = resolve_allocators(args)
    unknown = [a for a in found if a.name not in allocs.KNOWN]
    if unknown:
        sys.stderr.write(f"bench/run: unknown allocator(s) {', '.join(a.name for a in unknown)};"
                         f" choose from {','.join(allocs.KNOWN)}\n")
        return 2
    for a in found:
        if not a.available:
            sys.stderr.write(f"bench/run: {a.name}: {a.note}\n")
    reference, ref_note = pick_reference(args, found)
    os.makedirs(args.out, exist_ok=True)
    if args.callgrind:
        from . import callgrind
        return callgrind.run(args, cfgs, found, reference, ref_note, choose_scale)
    return run_timing(args, cfgs, found, reference, ref_note)


def run_timing(args, cfgs, found, reference, ref_note):
    runs = args.runs if args.runs is not None else (1 if args.smoke else 5)
    timeout = args.timeout or (1800 if args.full else 120)
    res = report.Results(cfgs, found, reference)
    avail = [a for a in found if a.available]
    total = runs * len(cfgs) * len(avail)
    progress = Progress(total)
    interrupted = False
    started = datetime.datetime.now(datetime.timezone.utc)
    hopeless = set()  # cells that timed out: not run again
    try:
        for k in range(runs):
            # Interleave: every configuration under every allocator before the next
            # round, with the allocator order rotated from round to round.
            order = avail[k % len(avail):] + avail[:k % len(avail)] if avail else []
            for cfg in cfgs:
                for a in order:
                    key = (cfg.label, a.name)
                    if key in hopeless:
                        progress.done += 1
                        continue
                    scale = choose_scale(cfg.workload, args)
                    extra = cfg.workload.smoke_args if args.smoke else ()
                    argv = workload_argv(args.bin_dir, cfg, scale, args.seed, extra)
                    progress.show(f"{cfg.label:18} {a.name:9} run {k + 1}/{runs}")
                    r = measure.run(argv, a.env(), timeout, a.preload, launcher(args))
                    measure.check(r, a.preload)
                    res.cells[key].runs.append(r)
                    if r.timed_out:
                        hopeless.add(key)
                    if not r.ok:
                        sys.stderr.write(f"\nbench/run: {cfg.label} under {a.name} failed: "
                                         f"{r.error}\n  $ {r.command_line()}\n")
                        tail = (r.stderr.strip().splitlines() or [""])[-3:]
                        for line in tail:
                            if line:
                                sys.stderr.write(f"  | {line}\n")
                    progress.done += 1
    except KeyboardInterrupt:
        interrupted = True
        sys.stderr.write("\nbench/run: interrupted; writing what was measured\n")
    progress.finish()
    for a in avail:
        if a.name.startswith("jsmalloc") and allocs.fingerprint(a.preload) != a.version:
            ref_note = ((ref_note + "; ") if ref_note else "") + (
                f"WARNING: {a.preload} changed during the run (now "
                f"{allocs.fingerprint(a.preload)}); jsmalloc's numbers mix two builds")
            sys.stderr.write(f"bench/run: {ref_note}\n")
    res.check_checksums()
    text = render_markdown(args, res, found, reference, ref_note, runs, started, interrupted)
    sys.stdout.write(text)
    sys.stdout.flush()
    md_path = os.path.join(args.out, "latest.md")
    with open(md_path, "w") as f:
        f.write(text)
    res.write_csv(os.path.join(args.out, "latest.csv"))
    res.write_runs_csv(os.path.join(args.out, "latest-runs.csv"))
    sys.stderr.write(f"bench/run: wrote {md_path}, latest.csv, latest-runs.csv and charts in "
                     f"{args.out}\n")
    # A failing run of jsmalloc is a defect and fails the command; a peer's failure (such
    # as Debian mimalloc 2.0.9 misaligning aligned_alloc) is reported in the table only.
    failed = any(c.failed_runs for (_, alloc), c in res.cells.items() if alloc == "jsmalloc")
    if args.smoke:
        return smoke_check(args, res)
    return 1 if (failed or interrupted) else 0


def scale_name(args):
    if args.smoke:
        s = "smoke (tiny)"
    elif args.full:
        s = "full (published sizes)"
    else:
        s = "default"
    if args.scale != 1.0:
        s += f" × {args.scale:g}"
    return s


def render_markdown(args, res, found, reference, ref_note, runs, started, interrupted):
    names = [a.name for a in found]
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    subtitle = f"{when} · {scale_name(args)} scale · {runs} run(s) · {os.cpu_count()} CPUs"
    charts = res.write_charts(args.out, subtitle)
    out = []
    out.append("# jsmalloc benchmark results\n")
    out.append(f"- Date: {when}; {len(res.configs)} configurations × {len(names)} allocators "
               f"× {runs} run(s), interleaved; {scale_name(args)} scale"
               f"{'; INTERRUPTED, partial' if interrupted else ''}.")
    out.append(f"- Machine: {system_summary()}.")
    out.append(f"- Command: `bench/run {' '.join(sys.argv[1:])}`".rstrip() + ".")
    for a in found:
        if a.available:
            detail = a.preload or "no preload"
            ver = f" ({a.version})" if a.version else ""
            out.append(f"- {a.name}: {detail}{ver}")
        else:
            out.append(f"- {a.name}: **{a.note}**")
    if ref_note:
        out.append(f"- Note: {ref_note}.")
    out.append("")
    out.append(f"Ratios are to **{reference}** (below 1 = less time or memory than "
               f"{reference}). Geomean: geometric mean of a column's ratios. A cell shows "
               "`missing` when the allocator could not be found, `FAIL` when every run "
               "crashed or failed its own verification (see Failures).\n")
    t, _ = res.time_table()
    out.append(f"## Wall time (ms): median [min–max] of {runs} run(s), ratio to {reference}\n")
    out.append(t)
    p, _ = res.peak_rss_table()
    out.append(f"## Peak RSS (MiB, ru_maxrss), ratio to {reference}\n")
    out.append(p)
    a, _ = res.rss_after_table()
    out.append("## RSS after free (MiB): resident set once the workload has freed "
               f"everything, ratio to {reference}\n")
    out.append(a)
    # Sections that only some runs have: (table, heading, introduction or None).
    sections = [
        (res.phase_table("seed-"),
         "## The seed's table: in-process time per size (ms, median), ratio to "
         f"{reference}\n", None),
        (res.round_table("frag"), "## Fragmentation: resident set over the rounds of `frag`\n",
         None),
        (res.round_table("soak"), "## Soak: resident set over the rounds of `soak`\n",
         "A steady live set replaced round after round; `soak.svg` plots RSS per round "
         "against the live bytes, so creep shows as a rising line.\n"),
        (res.burst_small_table(), "## Memory back to the OS: `burst-small` (issue 15)\n",
         "Small blocks (16 B .. 4 KiB) allocated and written, all freed in "
         "allocation order, then light activity (every ms a malloc of 100 B, "
         "70 KB and 2 MiB, touched and freed). The resident set right after the "
         "frees, at three points later, and after `malloc_trim(0)`, as a share "
         "of the peak (median of the runs); `burst-small.svg` plots it over "
         "time. `malloc_trim resolved in` says whose `malloc_trim` ran: glibc's "
         "under a preloaded allocator that has none trims only glibc's own, "
         "unused, heap.\n"),
        (res.latency_tables(), "## Latency: cycles per malloc+free pair\n",
         "`latency`: rdtsc cycles per malloc+free pair (the loop's own few cycles "
         "included), the median of 31 repetitions inside a run, pinned to one CPU, "
         "then the median [min–max] over the runs; ratio to " + str(reference) + ". tight: "
         "malloc then free at once; batch: 1000 mallocs, then the 1000 frees; random: "
         "a pool of 1000 blocks, each step frees a random one and allocates into its "
         "slot; churn: threads one after another, each allocating 64 B objects and "
         "handing every other one to a long-lived thread that frees them, cycles per "
         "object including the thread's start and exit. `latency.svg` plots the "
         "first three by size.\n"),
        (res.hugeread_table(), "## Hugepages: `hugeread`\n",
         "64-byte objects linked in one random cycle and chased: nanoseconds per "
         "dependent read (median of the runs), and `AnonHugePages` of "
         "`/proc/self/smaps_rollup` with the heap built, as a share of the "
         "resident set.\n"),
    ]
    for table, heading, intro in sections:
        if not table:
            continue
        out.append(heading)
        if intro:
            out.append(intro)
        out.append(table)
    out.append("## Charts\n")
    for c in charts:
        out.append(f"![{c}]({c})")
    out.append("")
    fails = res.failures()
    out.append("## Failures\n")
    out.append(fails if fails else "None: every run exited 0 and verified its checksum.\n")
    return "\n".join(out) + "\n"


def smoke_check(args, res):
    """--smoke: the runner checks its own outputs (for CTest)."""
    problems = []
    md = os.path.join(args.out, "latest.md")
    csv_path = os.path.join(args.out, "latest.csv")
    text = ""
    try:
        text = open(md).read()
        if "| workload |" not in text or "**geomean**" not in text:
            problems.append("latest.md has no table")
        for c in res.configs:
            if f"| {c.label} |" not in text:
                problems.append(f"latest.md has no row for {c.label}")
    except OSError as e:
        problems.append(f"cannot read {md}: {e}")
    try:
        import csv
        with open(csv_path) as f:
            rows = list(csv.DictReader(f))
        want = len(res.configs) * len(res.allocators)
        if len(rows) != want:
            problems.append(f"latest.csv has {len(rows)} rows, want {want}")
        for r in rows:
            if r["status"] not in ("ok", "missing"):
                problems.append(f"{r['label']} under {r['allocator']}: {r['status']} {r['note']}")
    except (OSError, KeyError) as e:
        problems.append(f"cannot read {csv_path}: {e}")
    problems.extend(res.missing_memory_cells())
    names = {c.workload.name for c in res.configs}
    for wname, heading, chart in (("burst-small", "## Memory back to the OS", "burst-small.svg"),
                                  ("hugeread", "## Hugepages", None),
                                  ("soak", "## Soak", "soak.svg"),
                                  ("latency", "## Latency", "latency.svg")):
        if wname not in names:
            continue
        if heading not in text:
            problems.append(f"latest.md has no {wname} section")
        if chart and not os.path.isfile(os.path.join(args.out, chart)):
            problems.append(f"{chart} missing")
    for f in ("time.svg", "rss.svg"):
        p = os.path.join(args.out, f)
        if not os.path.isfile(p) or "<svg" not in open(p).read(200):
            problems.append(f"{f} missing or not SVG")
    for pr in problems:
        sys.stderr.write(f"bench/run --smoke: {pr}\n")
    if not problems:
        sys.stderr.write("bench/run --smoke: table, CSV and charts OK\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
