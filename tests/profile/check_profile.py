#!/usr/bin/env python3
"""Heap-profiler checks, one per CTest test: check_profile.py CASE LIB WORKDIR PROG...

Exit 0 pass, 1 fail, 77 skip (a reader that is not installed)."""

import os
import re
import shutil
import subprocess
import sys

MiB = 1 << 20
SKIP = 77


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def run(cmd, env_extra, lib, check=True):
    env = dict(os.environ)
    env.update(env_extra)
    env["LD_PRELOAD"] = lib
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if check and r.returncode != 0:
        fail(f"{cmd} exited {r.returncode}: {r.stderr[-2000:]}")
    return r


def profiled(work, lib, prog, name, extra=()):
    path = os.path.join(work, name)
    if os.path.exists(path):
        os.remove(path)
    run([prog, "--dump", path] + list(extra), {"JSMALLOC_PROFILE_SAMPLE": "256k"}, lib)
    return path


def within(site, got, want, tolerance=0.15):
    print(f"  {site}: {got / MiB:.1f} MiB, expected {want / MiB:.1f} MiB")
    if abs(got - want) > tolerance * want:
        fail(f"{site}: {got / MiB:.1f} MiB is not within {tolerance:.0%} of {want / MiB:.1f} MiB")


def check_sites(live, cumulative):
    within("keep_100_mib (live)", live.get("keep_100_mib", 0), 100 * MiB)
    within("keep_40_mib (live)", live.get("keep_40_mib", 0), 40 * MiB)
    churn = live.get("churn_1_gib", 0)
    print(f"  churn_1_gib (live): {churn / MiB:.1f} MiB")
    if churn > 2 * MiB:
        fail(f"churn_1_gib holds {churn / MiB:.1f} MiB live; it keeps nothing")
    within("churn_1_gib (cumulative)", cumulative.get("churn_1_gib", 0), 1024 * MiB)
    leader = max(cumulative, key=cumulative.get)
    if leader != "churn_1_gib":
        fail(f"{leader} leads the cumulative profile, not churn_1_gib")


def google_pprof(prog, path, *flags):
    out = subprocess.run(["google-pprof", "--text"] + list(flags) + [prog, path],
                         capture_output=True, text=True).stdout
    sites = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)\s+[\d.]+%\s+[\d.]+%\s+[\d.]+\s+[\d.]+%\s+(\S+)", line)
        if m:
            sites[m.group(2)] = float(m.group(1)) * MiB
    if not sites:
        fail("google-pprof printed nothing usable:\n" + out)
    return sites


UNITS = {"": 1, "B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def go_pprof(prog, path, index, work):
    env = dict(os.environ, HOME=work, PPROF_TMPDIR=work)
    r = subprocess.run(["go", "tool", "pprof", "-top", "-sample_index=" + index, prog, path],
                       capture_output=True, text=True, env=env)
    sites = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*([\d.]+)([kMGT]?B)?\s+[\d.]+%\s+[\d.]+%\s+[\d.]+([kMGT]?B)?\s+[\d.]+%\s+(\S+)",
                     line)
        if m:
            sites[m.group(4)] = float(m.group(1)) * UNITS[m.group(2) or ""]
    if not sites:
        fail("go tool pprof printed nothing usable:\n" + r.stdout + r.stderr)
    return sites


TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "jsmalloc")


def tool(args, lib, expect_ok=True, use_env=True):
    env = dict(os.environ)
    if use_env:
        env["JSMALLOC_LIBRARY"] = lib
    else:
        env.pop("JSMALLOC_LIBRARY", None)
    r = subprocess.run([sys.executable, TOOL] + args, capture_output=True, text=True, env=env)
    if expect_ok and r.returncode != 0:
        fail(f"jsmalloc {' '.join(args)} exited {r.returncode}: {r.stderr}")
    if not expect_ok and r.returncode == 0:
        fail(f"jsmalloc {' '.join(args)} succeeded; it should have failed")
    return r


def tool_profiles(lib, work, prog):
    kept = os.path.join(work, "kept.heap")
    freed = os.path.join(work, "freed.heap")
    tool(["run", "--profile", kept, "--sample", "256k", "--", prog, "--keep"], lib)
    tool(["run", "--profile", freed, "--sample", "256k", "--", prog], lib)
    return kept, freed


def first_site(listing):
    for line in listing.splitlines():
        m = re.match(r"\s*[\d.]+ MiB\s+[\d.]+%\s+(\S+)", line)
        if m:
            return m.group(1)
    return None


def function_and_gap(prog):
    """((name, file offset inside it), file offset past its end) for a function of prog
    followed by padding before the next symbol. The text segment's file offsets
    are its addresses in the executables built here (checked: a PT_LOAD whose offset
    and address differ fails the test rather than guessing)."""
    out = subprocess.run(["nm", "-S", "--defined-only", prog], capture_output=True,
                         text=True).stdout
    syms = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[2] in ("T", "t"):
            syms.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
    syms.sort()
    loads = subprocess.run(["readelf", "-lW", prog], capture_output=True, text=True).stdout
    for (a, size, name), (b, _, _) in zip(syms, syms[1:]):
        if size > 1 and b > a + size + 1 and re.fullmatch(r"[A-Za-z_]\w*", name):
            for m in re.finditer(r"LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) \S+ 0x([0-9a-f]+)", loads):
                off, vaddr, filesz = (int(x, 16) for x in m.groups())
                if vaddr <= a < vaddr + filesz:
                    if off != vaddr:
                        fail(f"{prog}: its text's file offsets are not its addresses")
                    # Stack addresses are return addresses (the call is the byte
                    # before): a + size is still the function's last call, a + size + 1
                    # is not.
                    return (name, a + 1), a + size + 1
    fail(f"{prog}: no function followed by padding")


def tool_case(what, lib, work, prog):
    if what == "run":
        # --leaks and --stats reach the program; the library is found from the source
        # tree's build directory when JSMALLOC_LIBRARY is not set.
        r = tool(["run", "--leaks", "--stats", "--sample", "64k", "--", prog], lib, use_env=False)
        if "leak_small" not in r.stderr or "jsmalloc" not in r.stderr:
            fail("jsmalloc run --leaks --stats printed no leak report or statistics:\n" + r.stderr)
        # And the same objects by function, named from the symbol tables (the report's
        # dladdr sees exported symbols only).
        by_function = r.stderr.partition("by allocating function")[2]
        if "leak_small" not in by_function:
            fail("jsmalloc run --leaks listed no leak_small by allocating function:\n" + r.stderr)
        kept, _ = tool_profiles(lib, work, prog)
        if not open(kept).readline().startswith("heap profile:"):
            fail("jsmalloc run --profile wrote no profile")
        # --secure: the secure library, found beside the default one.
        maps = tool(["run", "--secure", "--", "/bin/cat", "/proc/self/maps"], lib).stdout
        if "libjsmalloc-secure.so" not in maps:
            fail("jsmalloc run --secure did not load libjsmalloc-secure.so:\n" + maps[:400])
    elif what == "top":
        kept, _ = tool_profiles(lib, work, prog)
        for args in (["top", "--own", kept], ["top", "--own", kept, prog]):
            out = tool(args, lib).stdout
            print(out)
            if first_site(out) != "keep_100_mib":
                fail(f"jsmalloc {' '.join(args)} does not put keep_100_mib first")
        out = tool(["top", "--own", "--alloc", kept], lib).stdout
        if first_site(out) != "churn_1_gib":
            fail("jsmalloc top --alloc does not put churn_1_gib first:\n" + out)
        out = tool(["top", kept, prog], lib).stdout  # google-pprof when installed
        if "keep_100_mib" not in out:
            fail("jsmalloc top (through google-pprof if present) misses keep_100_mib:\n" + out)
        # -n bounds the rows either way (google-pprof's --text listing has no limit).
        out = tool(["top", "-n", "1", kept, prog], lib).stdout
        lines = out.splitlines()
        total = next((i for i, l in enumerate(lines) if l.startswith("Total:")), None)
        # google-pprof's listing: the rows after its "Total:" line; jsmalloc's own: a
        # header, the rows, a total.
        rows = lines[total + 1:] if total is not None else lines[1:-1]
        if len(rows) != 1 or "keep_100_mib" not in rows[0]:
            fail("jsmalloc top -n 1 did not print exactly the first site:\n" + out)
        # A launcher script as PROG (pyenv's shims are): said, and the profile's own
        # program read instead.
        script = os.path.join(work, "launcher.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nexec true\n")
        r = tool(["top", "--own", kept, script], lib)
        if "not an ELF executable" not in r.stderr or first_site(r.stdout) != "keep_100_mib":
            fail(f"jsmalloc top with a script as PROG: {r.stderr!r}\n{r.stdout}")
        # An address past the end of the function before it (padding here; most of a
        # stripped library's code) is named by file and offset, one inside it by name.
        inside, past = function_and_gap(prog)
        synth = os.path.join(work, "gap.heap")
        lo = 0x10000000
        with open(synth, "w") as f:
            f.write("heap profile: 2: 2048 [2: 2048] @ heapprofile\n"
                    f"1: 1024 [1: 1024] @ {lo + inside[1]:#x}\n"
                    f"1: 1024 [1: 1024] @ {lo + past:#x}\n\nMAPPED_LIBRARIES:\n"
                    f"{lo:x}-{lo + os.path.getsize(prog):x} r-xp 00000000 00:00 0 {prog}\n")
        out = tool(["top", "--own", synth, prog], lib).stdout
        gap = f"{os.path.basename(prog)}+{past:#x}"
        if inside[0] not in out or gap not in out:
            fail(f"jsmalloc top named {inside[0]} and {gap}? It printed:\n{out}")
        # Nothing live (a program that freed everything, at exit): said, not an empty list.
        empty = os.path.join(work, "empty.heap")
        with open(empty, "w") as f:
            f.write("heap profile: 0: 0 [10: 20971520] @ heapprofile\n"
                    "0: 0 [10: 20971520] @ 0x1000 0x2000\n")
        r = tool(["top", empty], lib)
        if "nothing was live" not in r.stderr or "--alloc" not in r.stderr:
            fail(f"jsmalloc top of a profile with nothing live said {r.stderr!r}")
    elif what == "diff":
        kept, freed = tool_profiles(lib, work, prog)
        out = tool(["diff", freed, kept], lib).stdout
        print(out)
        m = re.search(r"MiB\s+([\d.]+) MiB\s+(\S+)\s*$", out.splitlines()[1])
        if m is None or m.group(2) != "keep_100_mib" or float(m.group(1)) < 85:
            fail("jsmalloc diff does not show keep_100_mib growing by about 100 MiB")
    elif what == "chart":
        kept, _ = tool_profiles(lib, work, prog)
        svg = os.path.join(work, "chart.svg")
        tool(["chart", kept, "-o", svg], lib)
        text = open(svg).read()
        if not text.startswith("<svg") or "keep_100_mib" not in text or "<rect" not in text:
            fail("jsmalloc chart wrote no bar chart naming keep_100_mib")
        # --flame: a box per function on each stack, main below the sites, each as wide
        # as the bytes allocated through it.
        flame = os.path.join(work, "flame.svg")
        tool(["chart", "--flame", kept, "-o", flame], lib)
        boxes = {}
        for m in re.finditer(r'<title>([^<:]+): ([\d.]+) MiB[^<]*</title><rect x="([\d.]+)" '
                             r'y="(\d+)" width="([\d.]+)"', open(flame).read()):
            boxes.setdefault(m.group(1), []).append((float(m.group(3)), int(m.group(4)),
                                                     float(m.group(5)), float(m.group(2))))
        for name in ("all", "main", "keep_100_mib"):
            if name not in boxes:
                fail(f"jsmalloc chart --flame has no box for {name}: {sorted(boxes)[:12]}")
        (ax, ay, aw, _), (mx, my, mw, _) = boxes["all"][0], boxes["main"][0]
        kx, ky, kw, kmib = max(boxes["keep_100_mib"], key=lambda b: b[2])
        if not (ay > my > ky):
            fail("jsmalloc chart --flame: main is not between the root and the site")
        if not (aw >= mw >= kw > 0) or not (mx <= kx and kx + kw <= mx + mw + 0.5):
            fail("jsmalloc chart --flame: the site's box is not within main's")
        within("keep_100_mib (flame)", kmib * MiB, 100 * MiB, 0.25)
    elif what == "help":
        out = tool(["--help"], lib).stdout
        for sub in ("jsmalloc run", "jsmalloc top", "jsmalloc diff", "jsmalloc chart"):
            if sub not in out:
                fail(f"--help does not describe {sub}")
    elif what == "bad-input":
        not_profile = os.path.join(work, "not-a-profile")
        with open(not_profile, "w") as f:
            f.write("hello\n")
        cases = [
            (["top", not_profile], "not a heap profile"),
            (["diff", not_profile, not_profile], "not a heap profile"),
            (["chart", not_profile, "-o", os.path.join(work, "x.svg")], "not a heap profile"),
            (["top", os.path.join(work, "missing.heap")], "cannot read"),
            (["run", "--", os.path.join(work, "no-such-program")], "no such program"),
            (["run", "--sample", "lots", "--", prog], "'lots'"),
            (["run", "--sample", "0", "--", prog], "'0'"),
            (["run", "--frontend", "percore", "--", prog], "'percore'"),
            (["top", "-n", "many", not_profile], "'many'"),
            (["frobnicate"], "'frobnicate'"),
            (["chart", not_profile], "-o"),
        ]
        for args, words in cases:
            r = tool(args, lib, expect_ok=False)
            if not r.stderr.startswith("jsmalloc: ") or words not in r.stderr:
                fail(f"jsmalloc {' '.join(args)}: message {r.stderr!r} does not say {words!r}")
            print(f"  jsmalloc {' '.join(args)} -> {r.stderr.strip()}")
    else:
        fail("unknown tool case " + what)


def main():
    case, lib, work, prog = sys.argv[1:5]
    os.makedirs(work, exist_ok=True)
    if case == "google-pprof":
        if shutil.which("google-pprof") is None:
            print("google-pprof not installed (Debian package google-perftools)")
            return SKIP
        path = profiled(work, lib, prog, "live.heap")
        check_sites(google_pprof(prog, path), google_pprof(prog, path, "--alloc_space"))
    elif case == "go-pprof":
        if shutil.which("go") is None:
            print("go not installed (Debian package golang-go)")
            return SKIP
        path = profiled(work, lib, prog, "live.pb.gz")
        check_sites(go_pprof(prog, path, "inuse_space", work),
                    go_pprof(prog, path, "alloc_space", work))
    elif case == "peak":
        # At exit the kept blocks are freed: the live profile is nearly empty, the peak
        # still shows them.
        path = os.path.join(work, "exit.heap")
        run([prog], {"JSMALLOC_PROFILE_SAMPLE": "256k", "JSMALLOC_PROFILE": path}, lib)
        head = open(path).readline().split()
        peak_head = open(path + ".peak").readline().split()
        live, peak = int(head[3]), int(peak_head[3])
        print(f"  live at exit {live / MiB:.1f} MiB, peak {peak / MiB:.1f} MiB")
        if live > 10 * MiB:
            fail("the exit profile still holds the freed blocks")
        within("peak", peak, 144 * MiB)
    elif case == "static":
        # jsmalloc linked in: each site is the program's function, whichever entry point
        # (and so however many of the allocator's frames) the allocation went through.
        path = os.path.join(work, "static.heap")
        env = dict(os.environ, JSMALLOC_PROFILE_SAMPLE="64k", JSMALLOC_PROFILE=path)
        env.pop("LD_PRELOAD", None)
        r = subprocess.run([prog], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"{prog} exited {r.returncode}: {r.stderr}")
        out = tool(["top", "--own", path, prog], lib).stdout
        print(out)
        sites = {}
        for line in out.splitlines():
            m = re.match(r"\s*([\d.]+) MiB\s+[\d.]+%\s+(.+)$", line)
            if m:
                sites[m.group(2).strip()] = float(m.group(1)) * MiB
        for name in ("by_malloc()", "by_calloc()", "by_realloc()", "by_new_array()",
                     "by_aligned_alloc()"):
            if name not in sites:
                fail(f"{name} is not a site of the statically linked program")
            within(name, sites[name], 32 * MiB, 0.3)
        for name in sites:
            if "jsmalloc" in name or "operator new" in name:
                fail(f"the allocator's own {name} is named as a site")
    elif case == "leaks":
        r = run([prog], {"JSMALLOC_PROFILE_SAMPLE": "64k", "JSMALLOC_LEAKS": "1"}, lib)
        print(r.stderr)
        if "leak_small" not in r.stderr:
            fail("the leak report does not name leak_small, which leaks")
        for innocent in ("free_everything", "churn_1_gib", "keep_100_mib"):
            if innocent in r.stderr:
                fail(f"the leak report names {innocent}, which frees everything")
        r = run([prog, "--keep"], {"JSMALLOC_PROFILE_SAMPLE": "64k", "JSMALLOC_LEAKS": "1"}, lib)
        if "keep_100_mib" not in r.stderr or "keep_40_mib" not in r.stderr:
            fail("with --keep the leak report does not name keep_100_mib and keep_40_mib")
    elif case == "signal":
        base = os.path.join(work, "sig.heap")
        for f in os.listdir(work):
            if f.startswith("sig.heap"):
                os.remove(os.path.join(work, f))
        run([prog, "--threads", "8"], {"JSMALLOC_PROFILE_SAMPLE": "256k", "JSMALLOC_PROFILE": base,
                                        "JSMALLOC_PROFILE_SIGNAL": "12"}, lib)
        for n in range(1, 21):
            text = open(f"{base}.{n}").read()
            if not text.startswith("heap profile:") or "\nMAPPED_LIBRARIES:\n" not in text:
                fail(f"{base}.{n} is not a whole heap profile")
        print("  20 profiles written on SIGUSR2 while 8 threads allocated")
    elif case == "edge":
        path = os.path.join(work, "edge.heap")
        r = run([prog, path], {"JSMALLOC_PROFILE_SAMPLE": "256k", "JSMALLOC_LEAKS": "1"}, lib)
        for site in ("before_main_site", "tls_destructor_site"):
            if site not in r.stderr:
                fail(f"the leak report does not name {site}:\n{r.stderr}")
        for n in range(10):
            text = open(f"{path}.child.{n}").read()
            if not text.startswith("heap profile:"):
                fail(f"child {n} wrote no profile")
        print("  sampled before main, in TLS destructors, and in 10 forked children")
    elif case.startswith("tool-"):
        tool_case(case[5:], lib, work, prog)
    else:
        fail("unknown case " + case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
