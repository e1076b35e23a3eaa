"""Aggregating runs into cells and writing the markdown table, the CSVs and the charts."""

import csv
import io
import math
import os
import statistics
from dataclasses import dataclass, field

from . import svg
from .measure import describe_exit


@dataclass
class Cell:
    """All runs of one workload configuration under one allocator."""
    label: str
    workload: str
    threads: int
    alloc: str
    available: bool = True
    missing_note: str = ""
    runs: list = field(default_factory=list)

    @property
    def ok_runs(self):
        return [r for r in self.runs if r.ok]

    @property
    def failed_runs(self):
        return [r for r in self.runs if not r.ok]

    @property
    def has_value(self):
        return self.available and bool(self.ok_runs)

    def _median(self, values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    @property
    def time_median(self):
        return self._median([r.wall_s for r in self.ok_runs])

    @property
    def time_min(self):
        return min((r.wall_s for r in self.ok_runs), default=None)

    @property
    def time_max(self):
        return max((r.wall_s for r in self.ok_runs), default=None)

    @property
    def peak_rss_kb(self):
        return self._median([r.maxrss_kb for r in self.ok_runs])

    @property
    def rss_after_kb(self):
        return self._median([_int(r.info.get("rss_after_free_kb")) for r in self.ok_runs])

    def info_median(self, key):
        """Median over the verified runs of a numeric `jsbench key=value`; None when no
        run printed a number for it (absent, or `n/a`)."""
        return self._median([_float(r.info.get(key)) for r in self.ok_runs])

    @property
    def ops(self):
        v = [_int(r.info.get("ops")) for r in self.ok_runs]
        return v[0] if v else None

    @property
    def checksum(self):
        v = [r.info.get("checksum") for r in self.ok_runs]
        return v[0] if v else ""

    def phase_medians(self):
        by = {}
        order = []
        for r in self.ok_runs:
            for lab, ms in r.phases:
                if lab not in by:
                    order.append(lab)
                by.setdefault(lab, []).append(ms)
        return [(lab, statistics.median(by[lab])) for lab in order]

    def median_run(self):
        ok = sorted(self.ok_runs, key=lambda r: r.wall_s)
        return ok[len(ok) // 2] if ok else None

    def status(self):
        if not self.available:
            return "missing"
        if not self.runs:
            return "not run"
        if not self.ok_runs:
            return "FAIL"
        if self.failed_runs:
            return "partial"
        return "ok"

    def failure_text(self):
        if not self.failed_runs:
            return ""
        return self.failed_runs[0].error


def _int(v):
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def geomean(values):
    vals = [v for v in values if v and v > 0]
    if not vals:
        return None
    return math.exp(sum(math.log(v) for v in vals) / len(vals))


def ratio(cell, ref_cell, attr):
    if cell is None or ref_cell is None or not cell.has_value or not ref_cell.has_value:
        return None
    a, b = getattr(cell, attr), getattr(ref_cell, attr)
    if a is None or b is None or b <= 0:
        return None
    return a / b


# ---- formatting ----------------------------------------------------------------------

def _fmt3(x):
    """About three significant digits: 123, 12.3, 1.23."""
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def fmt_ms(s):
    return _fmt3(s * 1000.0)


def fmt_mib(kb):
    if kb is None:
        return "–"
    return _fmt3(kb / 1024.0)


def fmt_ratio(r):
    if r is None:
        return ""
    return f"{r:.2f}×"


def _bad_cell_text(cell):
    if not cell.available:
        return "missing"
    if not cell.runs:
        return "–"
    r = cell.failed_runs[0]
    return f"**FAIL** ({describe_exit(r) if r.error.startswith(('exit', 'killed', 'timeout')) else 'see failures'})"


def md_table(header, rows, align):
    out = io.StringIO()
    out.write("| " + " | ".join(header) + " |\n")
    out.write("|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|\n")
    for row in rows:
        out.write("| " + " | ".join(row) + " |\n")
    return out.getvalue()


class Results:
    """Cells indexed by (label, allocator), in table order."""

    def __init__(self, configs, allocators, reference):
        self.configs = configs
        self.allocators = allocators  # list of Allocator, in column order
        self.reference = reference
        self.cells = {}
        for c in configs:
            for a in allocators:
                self.cells[(c.label, a.name)] = Cell(
                    c.label, c.workload.name, c.threads, a.name, a.available,
                    "" if a.available else a.note)

    def cell(self, label, alloc):
        return self.cells.get((label, alloc))

    def ref_cell(self, label):
        return self.cells.get((label, self.reference)) if self.reference else None

    def names(self):
        return [a.name for a in self.allocators]

    def check_checksums(self):
        """Every allocator must compute the same checksum for a configuration: the
        workloads are deterministic. A run that differs from the majority fails."""
        for c in self.configs:
            counts = {}
            for a in self.names():
                for r in self.cells[(c.label, a)].ok_runs:
                    counts[r.info.get("checksum")] = counts.get(r.info.get("checksum"), 0) + 1
            if len(counts) <= 1:
                continue
            majority = max(counts, key=counts.get)
            for a in self.names():
                for r in self.cells[(c.label, a)].ok_runs:
                    if r.info.get("checksum") != majority:
                        r.error = (f"checksum {r.info.get('checksum')} differs from the other "
                                   f"allocators' {majority}")

    # ---- tables ----------------------------------------------------------------------

    def _metric_table(self, attr, fmt_value, with_range=False):
        names = self.names()
        header = ["workload"] + names
        rows = []
        ratios = {a: [] for a in names}
        for c in self.configs:
            row = [c.label]
            ref = self.ref_cell(c.label)
            for a in names:
                cell = self.cells[(c.label, a)]
                if not cell.has_value:
                    row.append(_bad_cell_text(cell))
                    continue
                v = getattr(cell, attr)
                if v is None:
                    row.append("–")
                    continue
                text = fmt_value(v)
                if with_range:
                    text += f" [{fmt_value(cell.time_min)}–{fmt_value(cell.time_max)}]"
                r = ratio(cell, ref, attr)
                if r is not None:
                    ratios[a].append(r)
                    text += f" {'**' if a == 'jsmalloc' else ''}{fmt_ratio(r)}" \
                            f"{'**' if a == 'jsmalloc' else ''}"
                if cell.failed_runs:
                    text += f" ⚠{len(cell.failed_runs)}/{len(cell.runs)} failed"
                row.append(text)
            rows.append(row)
        geo = ["**geomean**"]
        for a in names:
            g = geomean(ratios[a])
            n = len(ratios[a])
            if g is None:
                geo.append("–")
            else:
                extra = f" ({n}/{len(self.configs)})" if n < len(self.configs) else ""
                geo.append(f"**{fmt_ratio(g)}**{extra}")
        rows.append(geo)
        return md_table(header, rows, ["l"] + ["r"] * len(names)), ratios

    def time_table(self):
        return self._metric_table("time_median", fmt_ms, with_range=True)

    def peak_rss_table(self):
        return self._metric_table("peak_rss_kb", fmt_mib)

    def rss_after_table(self):
        return self._metric_table("rss_after_kb", fmt_mib)

    def phase_table(self, prefix):
        """In-process time per phase (the seed's table, size by size)."""
        names = self.names()
        rows = []
        for c in self.configs:
            if not c.workload.name.startswith(prefix):
                continue
            phases = []
            for a in names:
                cell = self.cells[(c.label, a)]
                for lab, _ in cell.phase_medians():
                    if lab not in phases:
                        phases.append(lab)
            per = {a: dict(self.cells[(c.label, a)].phase_medians()) for a in names}
            for lab in phases:
                row = [c.label, lab]
                refv = per.get(self.reference, {}).get(lab) if self.reference else None
                for a in names:
                    v = per[a].get(lab)
                    if v is None:
                        row.append(_bad_cell_text(self.cells[(c.label, a)])
                                   if not self.cells[(c.label, a)].has_value else "–")
                        continue
                    text = f"{v:.1f}" if v >= 10 else f"{v:.2f}"
                    if refv:
                        text += f" {fmt_ratio(v / refv)}"
                    row.append(text)
                rows.append(row)
            row = [c.label, "RSS after free (MiB)"]
            for a in names:
                cell = self.cells[(c.label, a)]
                row.append(fmt_mib(cell.rss_after_kb) if cell.has_value else
                           _bad_cell_text(cell))
            rows.append(row)
        if not rows:
            return ""
        return md_table(["test", "size", *names], rows, ["l", "l"] + ["r"] * len(names))

    def median_run_series(self, workload, points):
        """{label: {alloc: points(samples)}} from each allocator's median run of
        `workload`, leaving out runs where `points` gives nothing."""
        out = {}
        for c in self.configs:
            if c.workload.name != workload:
                continue
            series = {}
            for a in self.names():
                cell = self.cells[(c.label, a)]
                r = cell.median_run() if cell.has_value else None
                pts = points(r.samples) if r is not None and r.samples else []
                if pts:
                    series[a] = pts
            if series:
                out[c.label] = series
        return out

    # Workloads that print `jsbench sample round=R live_kb=L rss_kb=R` after every round.
    ROUND_WORKLOADS = ("frag", "soak")

    def round_series(self, workload):
        """{label: {alloc: [(round, rss MiB)], 'live': [...]}} from each median run."""
        def rounds(samples, key):
            return [(s.get("round", i), s.get(key, 0) / 1024.0) for i, s in enumerate(samples)]
        out = self.median_run_series(workload, lambda samples: rounds(samples, "rss_kb"))
        live = self.median_run_series(workload, lambda samples: rounds(samples, "live_kb"))
        for label, series in out.items():
            series["live"] = next(iter(live[label].values()))
        return out

    def round_table(self, workload):
        names = self.names()
        rows = []
        for c in self.configs:
            if c.workload.name != workload:
                continue
            for metric, key in (("mean RSS over rounds (MiB)", "rss_mean_kb"),
                                ("max RSS over rounds (MiB)", "rss_max_kb"),
                                ("mean live data (MiB)", "live_mean_kb")):
                row = [metric]
                for a in names:
                    cell = self.cells[(c.label, a)]
                    vals = [_int(r.info.get(key)) for r in cell.ok_runs]
                    vals = [v for v in vals if v is not None]
                    row.append(fmt_mib(statistics.median(vals)) if vals else
                               _bad_cell_text(cell) if not cell.has_value else "–")
                rows.append(row)
        if not rows:
            return ""
        return md_table([workload, *names], rows, ["l"] + ["r"] * len(names))

    # ---- per-workload tables: one row per measure, one column per allocator -----------

    def _measure_table(self, workload, corner, rows):
        """rows: [(label, fn(cell) -> text)]; a cell without a verified run shows why."""
        names = self.names()
        out = []
        for c in self.configs:
            if c.workload.name != workload:
                continue
            for label, fn in rows:
                row = [label]
                for a in names:
                    cell = self.cells[(c.label, a)]
                    row.append(fn(cell) if cell.has_value else _bad_cell_text(cell))
                out.append(row)
        if not out:
            return ""
        return md_table([corner, *names], out, ["l"] + ["r"] * len(names))

    def burst_small_table(self):
        """burst-small: the peak, then the resident set at each point as % of the peak."""
        def pct_of_peak(key):
            def fn(cell):
                pct = cell.info_median(f"rss_{key}_pct")
                kb = cell.info_median(f"rss_{key}_kb")
                if pct is None or kb is None:
                    return "n/a"
                return f"{pct:.1f} % ({fmt_mib(kb)})"
            return fn

        def point_label(i):
            vals = [_float(r.info.get(f"t{i}_ms")) for c in self.cells.values()
                    if c.workload == "burst-small" for r in c.ok_runs]
            vals = [v for v in vals if v is not None]
            when = f"{statistics.median(vals) / 1000:g} s" if vals else f"point {i}"
            return f"{when} later, % of peak (MiB)"

        def trim_from(cell):
            libs = {os.path.basename(r.info.get("trim_lib", "none")) for r in cell.ok_runs}
            return ", ".join(sorted(libs))

        def peak_over_live(cell):
            peak, live = cell.info_median("rss_peak_kb"), cell.info_median("live_kb")
            return f"{peak / live:.2f}×" if peak and live else "–"

        rows = [("peak RSS, every block live (MiB)",
                 lambda cell: fmt_mib(cell.info_median("rss_peak_kb"))),
                ("peak RSS / bytes asked for", peak_over_live),
                ("right after the frees, % of peak (MiB)", pct_of_peak("after_free"))]
        rows += [(point_label(i), pct_of_peak(f"t{i}")) for i in (1, 2, 3)]
        rows += [("after malloc_trim(0), % of peak (MiB)", pct_of_peak("trim")),
                 ("malloc_trim resolved in", trim_from)]
        return self._measure_table("burst-small", "burst-small", rows)

    def hugeread_table(self):
        """hugeread: read latency and the heap's hugepage coverage."""
        def ns(cell):
            v = cell.info_median("ns_per_read")
            if v is None:
                return "–"
            ref = self.ref_cell(cell.label)
            rv = ref.info_median("ns_per_read") if ref is not None and ref.has_value else None
            return f"{v:.1f}" + (f" {fmt_ratio(v / rv)}" if rv else "")

        def pct(cell):
            v = cell.info_median("rss_huge_pct")
            return "n/a" if v is None else f"{v:.1f} %"

        rows = [("ns per read (median), ratio to " + str(self.reference), ns),
                ("on hugepages, % of RSS", pct),
                ("AnonHugePages (MiB)", lambda cell: fmt_mib(cell.info_median("anon_huge_kb"))),
                ("RSS with the heap built (MiB)",
                 lambda cell: fmt_mib(cell.info_median("rss_peak_kb"))),
                ("objects' bytes (MiB)", lambda cell: fmt_mib(cell.info_median("heap_kb")))]
        return self._measure_table("hugeread", "hugeread", rows)

    def burst_small_series(self):
        """{label: {alloc: [(seconds after the frees, rss MiB)]}} from each median run."""
        return self.median_run_series(
            "burst-small", lambda samples: [(s["t_ms"] / 1000.0, s["rss_kb"] / 1024.0)
                                            for s in samples if "t_ms" in s and "rss_kb" in s])

    # ---- latency: cycles per malloc+free pair ---------------------------------------

    def latency_values(self):
        """{label: {pattern: {size: {alloc: [cycles of each verified run]}}}}."""
        out = {}
        for c in self.configs:
            if c.workload.name != "latency":
                continue
            per = out.setdefault(c.label, {})
            for a in self.names():
                cell = self.cells[(c.label, a)]
                by = {}
                for r in cell.ok_runs:
                    for key, cycles in r.latency.items():
                        by.setdefault(key, []).append(cycles)
                for (pattern, size), vals in by.items():
                    per.setdefault(pattern, {}).setdefault(size, {})[a] = sorted(vals)
        return out

    def latency_medians(self):
        """{label: {pattern: {size: {alloc: median cycles over the verified runs}}}}."""
        return {label: {pattern: {size: {a: statistics.median(v) for a, v in allocs.items()}
                                  for size, allocs in sizes.items()}
                        for pattern, sizes in patterns.items()}
                for label, patterns in self.latency_values().items()}

    def latency_tables(self):
        """One table per pattern: a row per size, a column per allocator; each cell the
        median over the runs, their range when there are several, the ratio."""
        names = self.names()
        parts = []
        for label, patterns in self.latency_values().items():
            for pattern, sizes in patterns.items():
                rows = []
                for size in sorted(sizes):
                    runs = sizes[size]
                    vals = {a: statistics.median(v) for a, v in runs.items()}
                    refv = vals.get(self.reference) if self.reference else None
                    row = [f"{size}"]
                    for a in names:
                        cell = self.cells[(label, a)]
                        v = vals.get(a)
                        if v is None:
                            row.append(_bad_cell_text(cell) if not cell.has_value else "–")
                            continue
                        text = f"{v:.1f}"
                        if len(runs[a]) > 1:
                            text += f" [{runs[a][0]:.1f}–{runs[a][-1]:.1f}]"
                        if refv:
                            r = fmt_ratio(v / refv)
                            text += f" **{r}**" if a == "jsmalloc" else f" {r}"
                        row.append(text)
                    rows.append(row)
                parts.append(f"**{pattern}**\n\n" + md_table(
                    ["size (B)", *names], rows, ["r"] + ["r"] * len(names)))
        return "\n".join(parts)

    def missing_memory_cells(self):
        """Cells with a verified run but no peak RSS or no RSS after free: every workload
        must report both for every allocator."""
        out = []
        for c in self.configs:
            for a in self.names():
                cell = self.cells[(c.label, a)]
                if not cell.has_value:
                    continue
                if not cell.peak_rss_kb:
                    out.append(f"{c.label} under {a}: no peak RSS")
                if c.workload.frees_all and cell.rss_after_kb is None:
                    out.append(f"{c.label} under {a}: no rss_after_free_kb")
        return out

    def failures(self):
        out = []
        for c in self.configs:
            for a in self.names():
                cell = self.cells[(c.label, a)]
                if not cell.failed_runs:
                    continue
                r = cell.failed_runs[0]
                tail_err = "\n".join(r.stderr.strip().splitlines()[-15:])
                tail_out = "\n".join(r.stdout.strip().splitlines()[-10:])
                out.append(
                    f"### {c.label} under {a}: {r.error} "
                    f"({len(cell.failed_runs)} of {len(cell.runs)} runs failed)\n\n"
                    f"```\n$ {r.command_line()}\n"
                    f"# {describe_exit(r)} after {r.wall_s:.2f} s\n"
                    f"# stdout (last lines):\n{tail_out}\n"
                    f"# stderr (last lines):\n{tail_err}\n```\n")
        return "\n".join(out)

    # ---- files -----------------------------------------------------------------------

    def write_csv(self, path):
        names = self.names()
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["workload", "threads", "label", "allocator", "status", "runs_ok",
                        "runs", "time_median_s", "time_min_s", "time_max_s",
                        f"time_ratio_{self.reference}", "peak_rss_kb",
                        f"peak_rss_ratio_{self.reference}", "rss_after_free_kb",
                        f"rss_after_free_ratio_{self.reference}", "ops", "checksum", "note"])
            for c in self.configs:
                ref = self.ref_cell(c.label)
                for a in names:
                    cell = self.cells[(c.label, a)]

                    def num(v, digits=6):
                        return "" if v is None else f"{v:.{digits}f}"

                    has = cell.has_value
                    w.writerow([
                        c.workload.name, c.threads, c.label, a, cell.status(),
                        len(cell.ok_runs), len(cell.runs),
                        num(cell.time_median) if has else "", num(cell.time_min) if has else "",
                        num(cell.time_max) if has else "",
                        num(ratio(cell, ref, "time_median"), 4),
                        "" if not has or cell.peak_rss_kb is None else int(cell.peak_rss_kb),
                        num(ratio(cell, ref, "peak_rss_kb"), 4),
                        "" if not has or cell.rss_after_kb is None else int(cell.rss_after_kb),
                        num(ratio(cell, ref, "rss_after_kb"), 4),
                        "" if cell.ops is None else cell.ops, cell.checksum,
                        cell.missing_note if not cell.available else cell.failure_text()])

    def write_runs_csv(self, path):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["workload", "threads", "label", "allocator", "run", "wall_s",
                        "cpu_s", "peak_rss_kb", "rss_after_free_kb", "ops", "checksum", "error",
                        "phases_ms"])
            for c in self.configs:
                for a in self.names():
                    cell = self.cells[(c.label, a)]
                    for i, r in enumerate(cell.runs):
                        w.writerow([c.workload.name, c.threads, c.label, a, i + 1,
                                    f"{r.wall_s:.6f}", f"{r.cpu_s:.6f}", r.maxrss_kb,
                                    r.info.get("rss_after_free_kb", ""), r.info.get("ops", ""),
                                    r.info.get("checksum", ""), r.error,
                                    ";".join(f"{lab}:{ms:.3f}" for lab, ms in r.phases)])

    def write_charts(self, outdir, subtitle):
        names = self.names()
        labels = [c.label for c in self.configs]
        files = []
        for attr, fname, title in (
                ("time_median", "time.svg", "Wall time, ratio to {ref} (median of runs)"),
                ("peak_rss_kb", "rss.svg", "Peak RSS, ratio to {ref}"),
                ("rss_after_kb", "rss-after-free.svg", "RSS after free, ratio to {ref}")):
            values = {}
            for lab in labels:
                ref = self.ref_cell(lab)
                for a in names:
                    values[(lab, a)] = ratio(self.cells[(lab, a)], ref, attr)
            text = svg.ratio_chart(title.format(ref=self.reference), subtitle, labels, names,
                                   values, self.reference)
            with open(os.path.join(outdir, fname), "w") as f:
                f.write(text)
            files.append(fname)
        for workload in self.ROUND_WORKLOADS:
            for lab, series in self.round_series(workload).items():
                text = svg.line_chart(f"{workload} ({lab}): RSS after each round",
                                      subtitle + " · dashed: bytes the program holds", "round",
                                      "MiB", series)
                fname = f"{workload}.svg" if lab == workload else f"{lab}.svg"
                with open(os.path.join(outdir, fname), "w") as f:
                    f.write(text)
                files.append(fname)
        for lab, patterns in self.latency_medians().items():
            panels = {}
            for pattern, sizes in patterns.items():
                if len(sizes) < 2:
                    continue  # churn is one size: its table row says it all
                series = {}
                for size in sorted(sizes):
                    for a, v in sizes[size].items():
                        series.setdefault(a, []).append((size, v))
                panels[pattern] = {a: series[a] for a in names if a in series}
            if not panels:
                continue
            text = svg.log_panels(f"Latency: cycles per malloc+free pair ({lab})",
                                  subtitle + " · median of the runs' medians, pinned",
                                  "size (bytes)", "cycles", panels)
            fname = "latency.svg" if lab == "latency" else f"{lab}.svg"
            with open(os.path.join(outdir, fname), "w") as f:
                f.write(text)
            files.append(fname)
        for lab, series in self.burst_small_series().items():
            text = svg.line_chart(f"RSS after a burst of small blocks is freed ({lab})",
                                  subtitle + " · light activity all along", "seconds after "
                                  "the last free", "MiB", series)
            fname = f"{lab}.svg"
            with open(os.path.join(outdir, fname), "w") as f:
                f.write(text)
            files.append(fname)
        return files
