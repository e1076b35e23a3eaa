"""An allocation-heavy Python workload for tests/programs/python.sh.

Run once on the system allocator and once under LD_PRELOAD=libjsmalloc.so: the two
outputs must be identical, so everything printed is deterministic (PYTHONHASHSEED is
fixed by the caller, random generators are seeded, nothing prints an address).
Several hundred MB go through the allocator: dicts, lists, strings, json round trips,
strings and bytearrays grown in place (realloc), big buffers, reference cycles,
threads freeing what others allocated, zlib, sqlite, and a fork.
"""

import gc
import hashlib
import json
import os
import queue
import random
import sys
import threading
import zlib

DIGEST = hashlib.sha256()


def report(name, *values):
    line = f"{name}: " + " ".join(str(v) for v in values)
    DIGEST.update(line.encode())
    print(line, flush=True)


def json_round_trips():
    total = 0
    for round_no in range(2):
        data = {
            f"key-{round_no}-{i}": {
                "id": i,
                "name": "n" * (i % 61) + str(i),
                "tags": [f"t{j}" for j in range(i % 9)],
                "score": (i * 7919) % 10007 / 7.0,
                "nested": {"a": [i, i + 1, {"b": str(i) * (i % 5)}]},
            }
            for i in range(20000)
        }
        text = json.dumps(data, sort_keys=True)
        back = json.loads(text)
        if back != data:
            raise SystemExit(f"json round trip {round_no} differs")
        total += len(text)
        report(f"json round {round_no}", len(text), hashlib.sha256(text.encode()).hexdigest()[:16])
    report("json total bytes", total)


def random_churn(seed, slots, steps):
    """Replaces random slots of a pool with objects of random kinds and sizes."""
    rng = random.Random(seed)
    pool = [None] * slots
    checksum = 0
    for step in range(steps):
        slot = rng.randrange(slots)
        kind = rng.randrange(6)
        if kind == 0:
            obj = bytes(rng.randrange(1, 512))
        elif kind == 1:
            obj = "s" * rng.randrange(1, 4096)
        elif kind == 2:
            obj = list(range(rng.randrange(0, 300)))
        elif kind == 3:
            obj = {i: str(i) for i in range(rng.randrange(0, 80))}
        elif kind == 4:
            obj = bytearray(rng.randrange(4096, 200000))
        else:
            obj = bytes(rng.randrange(1, 64)) * rng.randrange(1, 2000)
        old = pool[slot]
        if old is not None:
            checksum = (checksum * 31 + len(old)) % 1000000007
        pool[slot] = obj
    checksum = (checksum + sum(len(o) for o in pool if o is not None)) % 1000000007
    return checksum


def string_growth():
    # CPython grows a string or bytearray held by one reference in place: realloc, up to
    # sizes that leave the size classes (large spans, then huge mappings).
    text = ""
    for i in range(200000):
        text += f"line {i} " + "x" * (i % 37) + "\n"
    report("string growth", len(text), hashlib.sha256(text.encode()).hexdigest()[:16])
    buf = bytearray()
    chunk = bytes(range(256)) * 64
    while len(buf) < 48 << 20:
        buf += chunk
    buf[::4096] = b"\x01" * len(buf[::4096])
    report("bytearray growth", len(buf), hashlib.sha256(buf).hexdigest()[:16])
    del buf
    pieces = text.split("\n")
    joined = "|".join(reversed(pieces))
    report("split/join", len(pieces), len(joined), joined.count("x"))


def big_buffers():
    sizes = [(3 + (i * 5) % 29) << 20 for i in range(16)]
    total = 0
    keep = []
    for size in sizes:
        block = bytearray(size)
        block[0] = block[-1] = size % 251
        total += block[0] + block[-1] + len(block)
        keep.append(block)
        if len(keep) > 4:
            keep.pop(0)
    report("big buffers", total // (1 << 20))


def cycles():
    class Node:
        __slots__ = ("next", "payload", "__weakref__")

    made = 0
    for round_no in range(20):
        nodes = [Node() for _ in range(5000)]
        for i, node in enumerate(nodes):
            node.next = nodes[(i * 7 + round_no) % len(nodes)]
            node.payload = [i] * (i % 13)
        made += len(nodes)
        del nodes
    collected = gc.collect()
    report("cycles", made, collected >= 0)


def worker(seed, out):
    out.put((seed, random_churn(seed, 2000, 12000)))


def threads():
    # Four threads churn at once; what each allocated is freed by whoever drops it last.
    results = queue.Queue()
    shared = []
    lock = threading.Lock()

    def producer(seed):
        rng = random.Random(seed)
        for _ in range(1500):
            item = [str(rng.randrange(10**6))] * rng.randrange(1, 50)
            with lock:
                shared.append(item)
        worker(seed, results)

    def consumer():
        taken = 0
        for _ in range(200000):
            with lock:
                if shared:
                    shared.pop(0 if taken % 2 else -1)
                    taken += 1
            if taken >= 3000:
                break
        results.put(("consumer", min(taken, 3000)))

    pool = [threading.Thread(target=producer, args=(seed,)) for seed in (11, 12, 13, 14)]
    pool.append(threading.Thread(target=consumer))
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    got = []
    while not results.empty():
        got.append(results.get())
    got = [r for r in got if r[0] != "consumer"]
    for seed, checksum in sorted(got):
        report(f"thread {seed}", checksum)
    del shared[:]


def compression():
    text = "".join(f"{i:08d} {'abcdefghij' * (i % 7)} {i * i % 9973}\n" for i in range(150000)).encode()
    packed = zlib.compress(text, 6)
    if zlib.decompress(packed) != text:
        raise SystemExit("zlib round trip differs")
    report("zlib", len(text), hashlib.sha256(text).hexdigest()[:16])


def sqlite():
    try:
        import sqlite3
    except ImportError:
        report("sqlite", "unavailable")
        return
    db = sqlite3.connect(":memory:")
    db.execute("create table t (id integer primary key, k text, v blob)")
    db.executemany("insert into t (k, v) values (?, ?)",
                   ((f"k{i % 997}", bytes(i % 300)) for i in range(60000)))
    db.execute("create index tk on t (k)")
    rows = db.execute("select k, count(*), sum(length(v)) from t group by k order by k").fetchall()
    db.close()
    report("sqlite", len(rows), rows[0], rows[-1])


def fork():
    # A child forked while another thread allocates must find a working allocator.
    stop = threading.Event()

    def busy():
        while not stop.is_set():
            [bytes(100) for _ in range(1000)]

    t = threading.Thread(target=busy)
    t.start()
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                text = json.dumps({str(i): [i] * (i % 20) for i in range(20000)}, sort_keys=True)
                os.write(write_end, hashlib.sha256(text.encode()).hexdigest()[:16].encode())
                os._exit(0)
            except BaseException:
                os._exit(3)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as r:
            child_said = r.read().decode()
        _, status = os.waitpid(pid, 0)
    finally:
        stop.set()
        t.join()
    report("fork", os.waitstatus_to_exitcode(status), child_said)


def main():
    json_round_trips()
    report("churn", random_churn(1, 5000, 60000))
    string_growth()
    big_buffers()
    cycles()
    threads()
    compression()
    sqlite()
    fork()
    print("digest:", DIGEST.hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
