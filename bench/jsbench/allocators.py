"""Finding the allocators under test.

Each allocator is a shared library to LD_PRELOAD (glibc: none). A library is looked
for under several names in the usual library directories and in `ldconfig -p`; one
that cannot be found is reported as missing in every table, never dropped.
"""

import glob
import os
import subprocess
from dataclasses import dataclass

ORDER = ["jsmalloc", "glibc", "mimalloc", "jemalloc", "tcmalloc"]
# jsmalloc's other builds and modes, measured only when asked for (--allocators):
# the same library in per-CPU mode or with the heap profiler on at its default interval,
# and the secure library built beside it.
VARIANTS = ["jsmalloc-percpu", "jsmalloc-secure", "jsmalloc-profile"]
KNOWN = ORDER + VARIANTS

# Shared-object names to look for, best first.
SONAMES = {
    "mimalloc": ["libmimalloc.so.2", "libmimalloc.so", "libmimalloc.so.*"],
    "jemalloc": ["libjemalloc.so.2", "libjemalloc.so", "libjemalloc.so.*"],
    "tcmalloc": ["libtcmalloc_minimal.so.4", "libtcmalloc.so.4", "libtcmalloc_minimal.so",
                 "libtcmalloc.so", "libtcmalloc_minimal.so.*", "libtcmalloc.so.*"],
}

LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/local/lib",
            "/usr/lib64", "/usr/lib", "/lib64", "/lib"]


@dataclass
class Allocator:
    name: str
    preload: str | None  # path to LD_PRELOAD; None for glibc
    available: bool
    note: str = ""       # where it came from, or why it is missing
    version: str = ""
    extra_env: tuple = ()  # (name, value) pairs the workload runs with

    def env(self):
        """The environment for bench-launch: LD_PRELOAD is set by the launcher, in the
        workload's process only."""
        env = dict(os.environ)
        env.pop("LD_PRELOAD", None)
        env.update(dict(self.extra_env))
        return env


def _ldconfig_paths():
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        try:
            out = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True,
                                 timeout=10, check=False).stdout
        except (OSError, subprocess.SubprocessError):
            return {}
    paths = {}
    for line in out.splitlines():
        if "=>" in line:
            left, right = line.split("=>", 1)
            soname = left.strip().split(" ")[0]
            paths.setdefault(soname, right.strip())
    return paths


def _find_library(names):
    for n in names:
        for d in LIB_DIRS:
            hits = sorted(glob.glob(os.path.join(d, n)))
            for h in hits:
                if os.path.isfile(h):
                    return h
    ld = _ldconfig_paths()
    for n in names:
        if "*" in n:
            continue
        if n in ld and os.path.isfile(ld[n]):
            return ld[n]
    return None


def fingerprint(path):
    """Short sha256 and modification time of a library we build ourselves, so a table
    says which build it measured (and the runner notices a rebuild during a run)."""
    import datetime
    import hashlib
    try:
        real = os.path.realpath(path)
        with open(real, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        mtime = datetime.datetime.fromtimestamp(os.stat(real).st_mtime, datetime.timezone.utc)
        return f"{os.path.basename(real)} sha256 {digest}, built {mtime:%Y-%m-%d %H:%M} UTC"
    except OSError:
        return ""


def _package_version(path):
    """Debian package and version owning path, if dpkg knows it."""
    try:
        real = os.path.realpath(path)
        owner = subprocess.run(["dpkg", "-S", real], capture_output=True, text=True,
                               timeout=10, check=False).stdout.strip()
        if not owner:
            owner = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True,
                                   timeout=10, check=False).stdout.strip()
        if not owner:
            return ""
        pkg = owner.split(":")[0]
        if "," in pkg:
            pkg = pkg.split(",")[0]
        ver = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                             capture_output=True, text=True, timeout=10,
                             check=False).stdout.strip()
        return f"{pkg} {ver}".strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def find(name, jsmalloc_path):
    if name == "glibc":
        ver = os.confstr("CS_GNU_LIBC_VERSION") if hasattr(os, "confstr") else ""
        return Allocator("glibc", None, True, "system malloc, no preload", ver or "")
    if name == "jsmalloc":
        if jsmalloc_path and os.path.isfile(jsmalloc_path):
            return Allocator("jsmalloc", os.path.abspath(jsmalloc_path), True,
                             os.path.abspath(jsmalloc_path), fingerprint(jsmalloc_path))
        return Allocator("jsmalloc", None, False,
                         f"missing: {jsmalloc_path} not found (build it: make release)")
    if name == "jsmalloc-percpu":
        a = find("jsmalloc", jsmalloc_path)
        return Allocator(name, a.preload, a.available, a.note + " with JSMALLOC_FRONTEND=percpu",
                         a.version, (("JSMALLOC_FRONTEND", "percpu"),))
    if name == "jsmalloc-profile":
        a = find("jsmalloc", jsmalloc_path)
        return Allocator(name, a.preload, a.available,
                         a.note + " with JSMALLOC_PROFILE_SAMPLE=2m (the profiler on)", a.version,
                         (("JSMALLOC_PROFILE_SAMPLE", "2m"),))
    if name == "jsmalloc-secure":
        path = os.path.join(os.path.dirname(jsmalloc_path or ""), "libjsmalloc-secure.so")
        a = find("jsmalloc", path)
        return Allocator(name, a.preload, a.available, a.note, a.version)
    if name not in SONAMES:
        return Allocator(name, None, False, f"missing: unknown allocator '{name}'")
    path = _find_library(SONAMES[name])
    if path is None:
        return Allocator(name, None, False,
                         f"missing: none of {', '.join(SONAMES[name][:2])} found "
                         "(tools/install-deps bench)")
    return Allocator(name, path, True, path, _package_version(path))


def same_library(reported, expected):
    """Whether the malloc_lib a workload reported is the library we preloaded."""
    if not reported or reported == "unknown":
        return False
    try:
        return os.path.realpath(reported) == os.path.realpath(expected) or \
            os.path.samefile(reported, expected)
    except OSError:
        return os.path.basename(reported) == os.path.basename(expected)


def is_libc(reported):
    return bool(reported) and os.path.basename(reported).startswith("libc.so")
