"""The workload registry: every workload bench/run knows, with its scales.

A workload is one binary of build/release/bench/ plus fixed arguments. Its binary
takes --scale F (1.0 = the published, "full" size), --threads N and --seed S.

Scales (calibrated on the 2-core reference machine so that one run under mimalloc
takes roughly 0.1-0.3 s and the default `bench/run` finishes in about 10 minutes):
  scale            the default run
  callgrind_scale  a run under valgrind --tool=callgrind (None: not counted); about
                   20 ms natively, so 1-3 s under callgrind
  smoke_scale      `--smoke` and the CTest runner test: a few milliseconds
`--full` runs every workload at scale 1.0 (the seed's 800,000 items x 10 iterations).
"""

from dataclasses import dataclass, field

SINGLE = (1,)
THREADS = (1, 2, 4, 8)
MANY_THREADS = (1, 2, 4, 8, 16, 64)  # workloads that are about threads


@dataclass(frozen=True)
class Workload:
    name: str
    binary: str
    args: tuple
    threads: tuple
    scale: float
    callgrind_scale: float | None
    smoke_scale: float
    what: str
    # Arguments for the callgrind run and its zero-work baseline; None means
    # ("--scale", callgrind_scale) and ("--scale", "0").
    callgrind_args: tuple | None = None
    baseline_args: tuple | None = None
    smoke_args: tuple = field(default_factory=tuple)
    frees_all: bool = True  # prints rss_after_free_kb after freeing everything

    @property
    def multithreaded(self):
        return self.threads != SINGLE


def _seed(test, scale, what):
    return Workload(
        name="seed-" + test, binary="bench-seed", args=("--test", test), threads=SINGLE,
        scale=scale, callgrind_scale=scale / 40, smoke_scale=0.001,
        smoke_args=("--iters", "2"), what=what)


WORKLOADS = [
    _seed("free", 0.015, "sizes 1, 2, 4 ... 8192: allocate all items, then free all"),
    _seed("immediate", 0.15, "sizes 8 ... 8192: allocate and free each item at once"),
    _seed("free-desc", 0.04, "sizes 8192 ... 8: allocate all items, then free all"),
    _seed("scatter", 0.075, "size triples [8,16,32] ... [1024,2048,4096], all then free"),
    _seed("sparse", 0.5, "sizes 8 ... 1024 mixed, freed in order"),
    _seed("sparse-rev", 0.5, "sizes 8 ... 1024 mixed, freed in reverse order"),
    Workload(
        name="larson", binary="bench-larson", args=(), threads=MANY_THREADS,
        scale=0.04, callgrind_scale=0.002, smoke_scale=0.001,
        what="server simulation: threads replace random objects of a shared array; "
             "objects die in other threads; threads replaced every epoch"),
    Workload(
        name="cache-thrash", binary="bench-cache", args=("--test", "thrash"),
        threads=THREADS, scale=0.05, callgrind_scale=None, smoke_scale=0.0001,
        what="active false sharing: threads allocate small objects and write them hard"),
    Workload(
        name="cache-scratch", binary="bench-cache", args=("--test", "scratch"),
        threads=THREADS, scale=0.05, callgrind_scale=None, smoke_scale=0.0001,
        what="passive false sharing: threads free neighbouring objects handed to them, "
             "then allocate and write"),
    Workload(
        name="xmalloc", binary="bench-xmalloc", args=(), threads=MANY_THREADS,
        scale=0.06, callgrind_scale=0.002, smoke_scale=0.0005,
        what="producer/consumer ring: every object freed by the next thread"),
    Workload(
        name="thread-churn", binary="bench-churn", args=(), threads=MANY_THREADS,
        scale=0.05, callgrind_scale=0.005, smoke_scale=0.002,
        what="short-lived threads; a quarter of each thread's blocks freed after it exits"),
    Workload(
        name="remote", binary="bench-remote", args=(), threads=MANY_THREADS,
        scale=0.15, callgrind_scale=0.002, smoke_scale=0.002,
        what="rpmalloc's shape: threads allocate 16 B .. 16 KiB, free 7/8 of "
             "a neighbour's blocks, pause between rounds"),
    Workload(
        name="thread-pool", binary="bench-pool", args=(), threads=MANY_THREADS,
        scale=0.1, callgrind_scale=0.002, smoke_scale=0.001,
        what="a fixed pool of threads takes short tasks that allocate, free, "
             "and free a result another task left"),
    Workload(
        name="frag", binary="bench-frag", args=(), threads=SINGLE,
        scale=0.075, callgrind_scale=0.005, smoke_scale=0.001,
        smoke_args=("--rounds", "8"),
        what="long/medium/short-lived objects, size band changing per round; "
             "RSS sampled after every round"),
    Workload(
        name="soak", binary="bench-soak", args=(), threads=SINGLE,
        scale=0.125, callgrind_scale=0.004, smoke_scale=0.002,
        smoke_args=("--rounds", "6"),
        what="a steady 64 MiB live set of 16 B .. 64 KiB objects, half the short-lived "
             "and 1/16 of the long-lived replaced every round: RSS after every round, "
             "creep from round to round"),
    Workload(
        name="realloc", binary="bench-realloc", args=(), threads=SINGLE,
        scale=0.075, callgrind_scale=0.005, smoke_scale=0.002,
        what="strings growing by a few bytes and vectors doubling, by realloc"),
    Workload(
        name="mix", binary="bench-mix", args=(), threads=THREADS,
        scale=0.08, callgrind_scale=0.003, smoke_scale=0.002,
        what="random malloc/calloc/aligned_alloc/realloc/free over all size classes "
             "(1 B .. 512 KiB)"),
    Workload(
        name="large", binary="bench-large", args=(), threads=THREADS,
        scale=0.012, callgrind_scale=0.005, smoke_scale=0.001,
        what="64 KiB .. 32 MiB blocks, every page written"),
    Workload(
        name="burst", binary="bench-burst", args=(), threads=SINGLE,
        scale=0.25, callgrind_scale=None, smoke_scale=0.001,
        smoke_args=("--quiet-ms", "10"),
        what="a burst of 64 KiB .. 4 MiB blocks, all freed, then 1.5 s of small objects "
             "only: RSS after free says whether the burst went back to the OS"),
    Workload(
        name="burst-small", binary="bench-burst-small", args=(), threads=SINGLE,
        scale=0.25, callgrind_scale=None, smoke_scale=0.002,
        smoke_args=("--seconds", "0.05"),
        what="issue 15: 128 MiB of 16 B .. 4 KiB blocks, all freed in order, then 5 s of "
             "light activity (100 B, 70 KB, 2 MiB every ms): RSS over time as % of the "
             "peak, and after malloc_trim(0). Its wall time is mostly the fixed 5 s"),
    Workload(
        name="hugeread", binary="bench-hugeread", args=(), threads=SINGLE,
        scale=0.25, callgrind_scale=None, smoke_scale=0.001,
        what="256 MiB of 64 B objects linked in one random cycle, then chased: ns per "
             "dependent read, and the share of the heap on transparent hugepages"),
    Workload(
        name="cpp", binary="bench-cpp", args=(), threads=THREADS,
        scale=0.06, callgrind_scale=0.003, smoke_scale=0.002,
        smoke_args=("--entries", "300"),
        what="std::map / std::string / std::vector / std::shared_ptr, some objects "
             "destroyed by other threads"),
    Workload(
        name="aligned", binary="bench-aligned", args=(), threads=SINGLE,
        scale=0.02, callgrind_scale=0.001, smoke_scale=0.001,
        what="posix_memalign / aligned_alloc, alignments 16 B .. 64 KiB, checked"),
    Workload(
        name="micro-tight", binary="bench-micro", args=("--test", "tight"), threads=SINGLE,
        scale=0.2, callgrind_scale=0.01, smoke_scale=0.001,
        callgrind_args=("--iters", "1000000"), baseline_args=("--iters", "0"),
        what="p = malloc(32); free(p), in a loop"),
    Workload(
        name="micro-batch", binary="bench-micro", args=("--test", "batch"), threads=SINGLE,
        scale=0.2, callgrind_scale=0.01, smoke_scale=0.001,
        callgrind_args=("--iters", "1000000"), baseline_args=("--iters", "0"),
        what="1000 x malloc(32), then 1000 x free, in a loop"),
    Workload(
        name="latency", binary="bench-latency", args=(), threads=SINGLE,
        scale=0.5, callgrind_scale=None, smoke_scale=0.001,
        smoke_args=("--reps", "3", "--objects", "100"),
        what="rdtsc cycles per malloc+free pair, 8 B .. 32 KiB, tight / batch of 1000 / "
             "random slot of a 1000-block pool (median of 31, pinned), and thread churn "
             "with half of each thread's objects freed by another thread"),
]


@dataclass(frozen=True)
class Config:
    """One row of the table: a workload at one thread count."""
    workload: Workload
    threads: int

    @property
    def label(self):
        w = self.workload
        return f"{w.name}-t{self.threads}" if w.multithreaded else w.name


def configs(workloads, threads_override=None, smoke=False):
    out = []
    for w in workloads:
        if not w.multithreaded:
            counts = SINGLE
        elif threads_override:
            counts = tuple(threads_override)
        elif smoke:
            counts = (2,)
        else:
            counts = w.threads
        out.extend(Config(w, t) for t in counts)
    return out


def select(patterns):
    """Workloads whose name matches any pattern (substring, or glob with * ? [)."""
    import fnmatch
    if not patterns:
        return list(WORKLOADS)
    chosen = []
    for w in WORKLOADS:
        for p in patterns:
            glob = any(c in p for c in "*?[")
            if (glob and fnmatch.fnmatchcase(w.name, p)) or (not glob and p in w.name):
                chosen.append(w)
                break
    return chosen
