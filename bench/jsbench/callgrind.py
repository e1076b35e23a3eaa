"""bench/run --callgrind: instructions per operation, exact on a noisy machine.

For every single-threaded configuration and allocator, the workload runs twice under
`valgrind --tool=callgrind` with the allocator preloaded: once doing its work and
once doing none (micro: --iters 0; others: --scale 0). The difference of the two
"totals:" lines of the callgrind output files, divided by the operations the work
run reports (`jsbench ops=`), is the cost of one operation: start-up, the loader and
the allocator's initialisation cancel out. For micro-tight and micro-batch an
operation is one malloc+free pair (the loop around it, about 14 instructions, is the
same for every allocator).
"""

import datetime
import os
import re
import shutil
import sys
import tempfile

from . import measure, report

_TOTALS = re.compile(rb"^(?:totals|summary):\s+(\d+)", re.M)


def read_total_ir(path):
    with open(path, "rb") as f:
        data = f.read()
    m = _TOTALS.findall(data)
    if not m:
        raise ValueError(f"no totals/summary line in {path}")
    return int(m[-1])


def _callgrind(valgrind, launcher, argv, alloc, tmpdir, tag, timeout):
    outfile = os.path.join(tmpdir, f"{tag}.callgrind.out")
    full = [valgrind, "--tool=callgrind", f"--callgrind-out-file={outfile}", *argv]
    r = measure.run(full, alloc.env(), timeout, alloc.preload, launcher)
    measure.check(r, alloc.preload)
    ir = None
    if r.ok:
        try:
            ir = read_total_ir(outfile)
        except (OSError, ValueError) as e:
            r.error = str(e)
    return r, ir


def run(args, cfgs, found, reference, ref_note, choose_scale):
    from .main import Progress, launcher as launcher_of, workload_argv, system_summary
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        sys.stderr.write("bench/run --callgrind: valgrind not found (tools/install-deps "
                         "bench installs it)\n")
        return 2
    timeout = args.timeout or 900
    chosen = [c for c in cfgs if c.threads == 1 and c.workload.callgrind_scale is not None]
    if not chosen:
        sys.stderr.write("bench/run --callgrind: no single-threaded workload selected\n")
        return 2
    avail = [a for a in found if a.available]
    progress = Progress(len(chosen) * len(avail) * 2)
    rows = {}  # (label, alloc) -> (ir_per_op, ops, error, result)
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="jsbench-cg-") as tmp:
        for cfg in chosen:
            w = cfg.workload
            scale = w.callgrind_scale * args.scale
            work_extra = w.callgrind_args or ()
            base_extra = w.baseline_args or ()
            for a in avail:
                key = (cfg.label, a.name)
                if w.callgrind_args:
                    work = workload_argv(args.bin_dir, cfg, scale, args.seed, work_extra)
                    base = workload_argv(args.bin_dir, cfg, scale, args.seed, base_extra)
                else:
                    work = workload_argv(args.bin_dir, cfg, scale, args.seed)
                    base = workload_argv(args.bin_dir, cfg, 0, args.seed)
                progress.show(f"callgrind {cfg.label:18} {a.name:9} baseline")
                rb, ir0 = _callgrind(valgrind, launcher_of(args), base, a, tmp,
                                     f"{cfg.label}.{a.name}.0", timeout)
                progress.done += 1
                progress.show(f"callgrind {cfg.label:18} {a.name:9} work")
                rw, ir1 = _callgrind(valgrind, launcher_of(args), work, a, tmp,
                                     f"{cfg.label}.{a.name}.1", timeout)
                progress.done += 1
                bad = rb if not rb.ok else rw if not rw.ok else None
                ops = None
                try:
                    ops = int(rw.info.get("ops", ""))
                except ValueError:
                    pass
                if bad is not None:
                    rows[key] = (None, ops, bad.error, bad)
                    sys.stderr.write(f"\nbench/run --callgrind: {cfg.label} under {a.name} "
                                     f"failed: {bad.error}\n  $ {bad.command_line()}\n")
                elif not ops:
                    rows[key] = (None, ops, "workload reported no ops", rw)
                else:
                    rows[key] = ((ir1 - ir0) / ops, ops, "", rw)
    progress.finish()

    names = [a.name for a in found]
    header = ["workload", "ops", *names]
    table = []
    ratios = {n: [] for n in names}
    for cfg in chosen:
        ops = next((rows[(cfg.label, n)][1] for n in names
                    if (cfg.label, n) in rows and rows[(cfg.label, n)][1]), None)
        row = [cfg.label, f"{ops:,}" if ops else "–"]
        ref = rows.get((cfg.label, reference), (None,))[0] if reference else None
        for a in found:
            if not a.available:
                row.append("missing")
                continue
            v, _, err, _ = rows.get((cfg.label, a.name), (None, None, "not run", None))
            if v is None:
                row.append(f"**FAIL** ({err})")
                continue
            text = f"{v:.1f}"
            if ref:
                r = v / ref
                ratios[a.name].append(r)
                text += f" {report.fmt_ratio(r)}"
            row.append(text)
        table.append(row)
    geo = ["**geomean**", ""]
    for n in names:
        g = report.geomean(ratios[n])
        geo.append(f"**{report.fmt_ratio(g)}**" if g else "–")
    table.append(geo)

    when = started.strftime("%Y-%m-%d %H:%M UTC")
    out = ["# jsmalloc: instructions per operation (callgrind)\n",
           f"- Date: {when}. Machine: {system_summary()}.",
           f"- Command: `bench/run {' '.join(sys.argv[1:])}`.",
           "- Each cell: (Ir of the run doing the work − Ir of the same binary doing no work) "
           "÷ operations, counted by `valgrind --tool=callgrind` with the allocator preloaded. "
           "Exact and repeatable; it does not see cache misses, page faults or contention.",
           "- micro-tight / micro-batch: one operation = one malloc(32) + free pair, "
           "including about 14 instructions of loop and pattern write common to all "
           "allocators. Others: one operation = what the workload's `ops=` counts (seed: an "
           "allocation and its free; larson, xmalloc: a replaced object; realloc: an append "
           "step; mix: a step; frag: an allocation; soak: an allocation or a free; cpp: a map entry's round; churn: a "
           "block; large: a 64 KiB .. 32 MiB block written page by page).",
           ]
    for a in found:
        out.append(f"- {a.name}: " + ((a.preload or "no preload") +
                                      (f" ({a.version})" if a.version else "")
                                      if a.available else f"**{a.note}**"))
    if ref_note:
        out.append(f"- Note: {ref_note}.")
    out.append("")
    out.append(f"## Instructions per operation, ratio to {reference}\n")
    out.append(report.md_table(header, table, ["l", "r"] + ["r"] * len(names)))
    fails = [(k, v) for k, v in rows.items() if v[2]]
    out.append("## Failures\n")
    if not fails:
        out.append("None.\n")
    for (label, a), (_, _, err, r) in fails:
        tail = "\n".join(r.stderr.strip().splitlines()[-15:]) if r else ""
        out.append(f"### {label} under {a}: {err}\n\n```\n$ {r.command_line() if r else ''}\n"
                   f"{tail}\n```\n")
    text = "\n".join(out) + "\n"
    sys.stdout.write(text)
    path = os.path.join(args.out, "callgrind.md")
    with open(path, "w") as f:
        f.write(text)
    import csv
    with open(os.path.join(args.out, "callgrind.csv"), "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["label", "allocator", "instructions_per_op", "ops", "error"])
        for cfg in chosen:
            for a in found:
                v, ops, err, _ = rows.get((cfg.label, a.name),
                                          (None, None, a.note if not a.available else "", None))
                wr.writerow([cfg.label, a.name, "" if v is None else f"{v:.3f}",
                             ops or "", err])
    sys.stderr.write(f"bench/run: wrote {path} and callgrind.csv\n")
    return 1 if fails else 0
