"""Running one workload process and measuring it.

The runner measures wall time (fork to reap) and the child's peak RSS (ru_maxrss
from wait4) through bench-launch, a small C program (launch.c): forked from the Python
runner directly, a child would inherit the runner's memory high-water mark. The workload itself prints `jsbench key=value` lines: its phases, its
operation count, its RSS after freeing everything and its verified checksum.
"""

import os
import signal
import tempfile
import threading
from dataclasses import dataclass, field


@dataclass
class RunResult:
    argv: list
    env_preload: str | None
    wall_s: float = 0.0
    cpu_s: float = 0.0                # user + system time of the workload
    maxrss_kb: int = 0
    exit_code: int | None = None     # None if killed by a signal
    signal: int | None = None
    timed_out: bool = False
    stdout: str = ""
    stderr: str = ""
    info: dict = field(default_factory=dict)    # the `jsbench` key=value pairs
    phases: list = field(default_factory=list)  # [(label, ms)]
    samples: list = field(default_factory=list)  # frag: [{round, live_kb, rss_kb}]
    latency: dict = field(default_factory=dict)  # latency: {(pattern, size): cycles}
    error: str = ""                   # empty if the run verified

    @property
    def ok(self):
        return not self.error

    def command_line(self):
        pre = f"LD_PRELOAD={self.env_preload} " if self.env_preload else ""
        return pre + " ".join(_quote(a) for a in self.argv)


def _quote(a):
    if a and all(c.isalnum() or c in "-_./=:,+" for c in a):
        return a
    return "'" + a.replace("'", "'\\''") + "'"


def parse_output(text, result):
    for line in text.splitlines():
        if not line.startswith("jsbench "):
            continue
        kv = {}
        for tok in line[len("jsbench "):].split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                kv[k] = v
        if line.startswith("jsbench sample "):
            try:
                result.samples.append({k: int(v) for k, v in kv.items()})
            except ValueError:
                pass
        elif line.startswith("jsbench latency "):
            try:
                result.latency[(kv["pattern"], int(kv["size"]))] = float(kv["cycles"])
            except (KeyError, ValueError):
                pass
        elif "phase" in kv and "ms" in kv:
            try:
                result.phases.append((kv["phase"], float(kv["ms"])))
            except ValueError:
                pass
        else:
            result.info.update(kv)


def _kill(pid, pidfd):
    try:
        if pidfd is not None:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, OSError):
        pass


def run(argv, env, timeout_s, preload, launcher):
    """Runs argv through bench-launch (see launch.c), which forks it with LD_PRELOAD=
    preload, waits for it and reports its wall time, ru_maxrss and exit status on fd 3.
    env must not set LD_PRELOAD (the launcher itself runs without a preload).
    Returns a RunResult, not yet checked (see check())."""
    result = RunResult(argv=list(argv), env_preload=preload)
    env = {k: v for k, v in env.items() if k != "LD_PRELOAD"}
    full = [launcher, "--preload", preload or "", "--timeout", f"{timeout_s:g}", "--", *argv]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as rep:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out.fileno(), 1),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
            (os.POSIX_SPAWN_DUP2, rep.fileno(), 3),
        ]
        try:
            pid = os.posix_spawn(launcher, full, env, file_actions=actions)
        except OSError as e:
            result.error = f"cannot start {launcher}: {e}"
            return result
        pidfd = None
        if hasattr(os, "pidfd_open"):
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                pidfd = None
        # The launcher enforces the timeout; this is only a backstop if it hangs.
        timer = threading.Timer(timeout_s + 60, _kill, (pid, pidfd))
        timer.daemon = True
        timer.start()
        while True:
            try:
                _, status, _ = os.wait4(pid, 0)
                break
            except InterruptedError:
                continue
        timer.cancel()
        if pidfd is not None:
            os.close(pidfd)
        for f in (out, err, rep):
            f.seek(0)
        result.stdout = out.read().decode("utf-8", "replace")
        result.stderr = err.read().decode("utf-8", "replace")
        report = rep.read().decode("utf-8", "replace")
    kv = dict(tok.split("=", 1) for tok in report.split() if "=" in tok)
    if "status" not in kv:
        result.error = (f"bench-launch reported nothing (its wait status {status}); "
                        f"stderr: {result.stderr.strip()[-200:]}")
        return result
    result.wall_s = int(kv.get("wall_ns", 0)) / 1e9
    result.maxrss_kb = int(kv.get("maxrss_kb", 0))
    result.cpu_s = (int(kv.get("utime_us", 0)) + int(kv.get("stime_us", 0))) / 1e6
    result.timed_out = kv.get("timed_out") == "1"
    how, _, code = kv["status"].partition(":")
    if how == "exit":
        result.exit_code = int(code)
    elif how == "signal":
        result.signal = int(code)
    else:
        result.error = f"unknown wait status {kv['status']}"
    parse_output(result.stdout, result)
    return result


def describe_exit(r):
    if r.timed_out:
        return "timeout"
    if r.signal is not None:
        try:
            name = signal.Signals(r.signal).name
        except ValueError:
            name = str(r.signal)
        return f"killed by {name}"
    return f"exit {r.exit_code}"


def check(r, expect_lib):
    """Sets r.error unless the run exited 0, verified, and used the expected malloc.

    expect_lib: path of the preloaded library, or None for glibc.
    """
    from .allocators import is_libc, same_library
    if r.error:
        return r
    if r.timed_out or r.signal is not None or r.exit_code != 0:
        r.error = describe_exit(r)
        return r
    if r.info.get("verify") != "ok":
        r.error = "no 'verify=ok' line"
        return r
    lib = r.info.get("malloc_lib", "")
    if expect_lib is None:
        if not is_libc(lib):
            r.error = f"malloc came from {lib}, not glibc"
    elif not same_library(lib, expect_lib):
        r.error = f"preload not in effect: malloc came from {lib}"
    return r
