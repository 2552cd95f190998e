# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""bench/remote_cases.py - the remote executor's cases of bench/run.py.

Every case starts its own redis-server on a free 127.0.0.1 port with persistence off, and two
workers of each system on it (2 cfworker processes of 1 process each, loading
bench/peers/remote_tasks.so; Celery: one worker, prefork pool of 2; RQ: 2 workers; Dask: a
LocalCluster of 2 worker processes of 1 thread), and stops them all.

    remote_pingpong  2,000 sequential round trips of a no-op task: cfutures (remote_bench) against
                     the faster of Celery (Redis broker and result backend) and RQ, us per trip
    remote_batch     100,000 no-op tasks submitted at once, then every result: tasks/s, vs Celery
    remote_map       the seed map (99,999 items, K = 50) across the 2 cfworkers, automatic chunks:
                     the speed-up over the serial C run in the same process (remote_bench map)
    remote_map_dask  reference row: the same map in seconds, cfutures against Dask distributed
                     (client.map over 8 chunks, Python's seed function)

Each case function takes the Bench object and returns (cfutures runs, peer runs); finish()
completes the result row.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "peers")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

# key: (what, unit, peer name, how the ratio is formed, target, direction), as bench/run.py's CASES
CASES = {
    "remote_pingpong": ("2,000 sequential round trips of a no-op task through Redis, 2 workers", "us",
                        "faster of Celery (Redis broker + backend) and RQ", "cf/peer", 1 / 10, "<="),
    "remote_batch": ("100,000 no-op tasks through Redis submitted at once, 2 workers", "tasks/s",
                     "Celery (Redis broker + backend), prefork 2", "cf/peer", 10.0, ">="),
    "remote_map": ("seed map (99,999 items, K = 50) across 2 cfworker processes through Redis", "x",
                   "serial C, same run", "cf", 1.6, ">="),
    "remote_map_dask": ("the same seed map in seconds: cfutures remote executor vs Dask distributed", "s",
                        "Dask distributed LocalCluster, 2 worker processes", "peer/cf", None, ">="),
}
LABELS = {
    "remote_pingpong": "remote executor, 2k round trips, vs Celery/RQ",
    "remote_batch": "remote executor, 100k tasks, vs Celery",
    "remote_map": "remote executor, seed map on 2 cfworkers",
    "remote_map_dask": "remote seed map vs Dask (reference)",
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Redis:
    """A redis-server of our own on 127.0.0.1, no persistence; stopped on exit."""

    def __init__(self):
        self.port = free_port()
        self.url = "redis://127.0.0.1:%d" % self.port
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--daemonize", "no"], stdout=subprocess.DEVNULL)
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.025)
        self.proc.kill()
        raise RuntimeError("redis-server did not start on port %d" % self.port)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)


class Workers:
    """Worker processes started with `cmds`; SIGTERM (then SIGKILL) on exit."""

    def __init__(self, cmds, cwd=None):
        self.procs = [subprocess.Popen(c, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True) for c in cmds]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def run_json(cmd, timeout=1200):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=PEERS)
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), r.returncode, r.stderr[-800:]))
    return json.loads([l for l in r.stdout.splitlines() if l.startswith("{")][-1])


def peer_json(what, workers, cmd, timeout=1200):
    """One run of a peer (Celery, RQ) against a Redis and workers of its own:
    cmd(url) is its command.  A peer run that fails or hangs past `timeout` is
    logged and run once more on fresh servers (Celery's client has been seen
    to wait for ever on a result its backend already holds); a second failure
    is an error of the case."""
    for attempt in (1, 2):
        try:
            with Redis() as r, workers(r.url):
                return run_json(cmd(r.url), timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            if attempt == 2:
                raise
            log("  %s: the peer's run failed, running it again on fresh servers: %s" % (what, str(e)[-300:]))


def cfworkers(b, url):
    tasks = os.path.join(b.build, "bench", "peers", ".libs", "remote_tasks.so")
    cfw = os.path.join(b.build, "demos", "cfworker")
    return Workers([[cfw, "--redis", url, "--queue", "bench", "--tasks", tasks, "--procs", "1", "--name", "w%d" % i]
                    for i in (1, 2)])


def celery_workers(url):
    return Workers([[PY, os.path.join(PEERS, "celery_remote.py"), "worker", url, "2"]], cwd=PEERS)


def rq_workers(url):
    return Workers([[PY, os.path.join(PEERS, "rq_remote.py"), "worker", url] for _ in (1, 2)], cwd=PEERS)


def client(b, *args):
    return [os.path.join(b.build, "bench", "peers", "remote_bench")] + list(args)


def remote_pingpong(b):
    n = b.n(2000, 500)
    cf_runs, peer_runs, celery, rq = [], [], [], []
    for i in range(b.reps_for("remote_pingpong")):
        with Redis() as r, cfworkers(b, r.url):
            cf_runs.append(run_json(client(b, "pingpong", r.url, n))["value"])
        celery.append(peer_json("remote_pingpong", celery_workers,
                                lambda url: [PY, os.path.join(PEERS, "celery_remote.py"), "pingpong", url, n])["value"])
        rq.append(peer_json("remote_pingpong", rq_workers,
                            lambda url: [PY, os.path.join(PEERS, "rq_remote.py"), "pingpong", url, n])["value"])
        peer_runs.append(min(celery[-1], rq[-1]))
        log("  remote_pingpong run %d: cfutures %.1f us, celery %.1f us, rq %.1f us" % (
            i + 1, cf_runs[-1], celery[-1], rq[-1]))
    b.remote_peers = {"Celery": celery, "RQ": rq}
    return cf_runs, peer_runs


def remote_batch(b):
    n = b.n(100000, 20000)
    cf_runs, peer_runs = [], []
    for i in range(b.reps_for("remote_batch")):
        with Redis() as r, cfworkers(b, r.url):
            cf_runs.append(run_json(client(b, "batch", r.url, n))["value"])
        # Celery takes about 2 minutes here; 8 are a hang.
        peer_runs.append(peer_json("remote_batch", celery_workers,
                                   lambda url: [PY, os.path.join(PEERS, "celery_remote.py"), "batch", url, n],
                                   timeout=480)["value"])
        log("  remote_batch run %d: cfutures %.0f tasks/s, celery %.0f tasks/s" % (i + 1, cf_runs[-1], peer_runs[-1]))
    return cf_runs, peer_runs


def remote_map(b):
    runs, secs = [], []
    for i in range(b.reps_for("remote_map")):
        with Redis() as r, cfworkers(b, r.url):
            res = run_json(client(b, "map", r.url, "99999"))
        runs.append(res["value"])
        secs.append(res["remote_s"])
        log("  remote_map run %d: %.2fx (serial %.3f s, remote %.3f s, chunksize %s)" % (
            i + 1, res["value"], res["serial_s"], res["remote_s"], res["chunksize"]))
    b.remote_map_secs = secs
    return runs, []


def remote_map_dask(b):
    cf_runs, dask_runs = [], []
    for i in range(b.reps_for("remote_map_dask")):
        with Redis() as r, cfworkers(b, r.url):
            cf_runs.append(run_json(client(b, "map", r.url, "99999"))["remote_s"])
        res = run_json([PY, os.path.join(PEERS, "dask_remote.py"), "99999"])
        dask_runs.append(res["value"])
        log("  remote_map_dask run %d: cfutures %.3f s, dask %.3f s" % (i + 1, cf_runs[-1], dask_runs[-1]))
    return cf_runs, dask_runs


def finish(b, row, cf, peer):
    """Complete the row of one of these cases; returns it."""
    if row["key"] == "remote_pingpong":
        meds = {k: sorted(v)[len(v) // 2] for k, v in b.remote_peers.items()}
        row["peer_name"] = "faster of Celery (%.0f us) and RQ (%.0f us), per run" % (meds["Celery"], meds["RQ"])
        row["peers_runs"] = b.remote_peers
    if row["key"] == "remote_map":
        row["remote_s_runs"] = b.remote_map_secs
    if row["key"] == "remote_map_dask":
        row["reference"] = True
    return row
