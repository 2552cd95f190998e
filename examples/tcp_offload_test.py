#!/usr/bin/env python3
# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""tcp_offload_test.py - examples/tcp_offload with real clients: an answer,
a client that leaves before its answer (its task is cancelled), the server
still answering, then SIGTERM and a clean shutdown.  The listening socket is
made here and handed over as descriptor 3, as systemd socket activation does."""
import os
import select
import signal
import socket
import subprocess
import sys
import time

BIN = os.path.join(os.environ.get("CF_BUILDDIR", "."), "examples", "tcp_offload")


def line(p, deadline):
    """One line of the server's log (stderr), or fail at the deadline."""
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stderr], [], [], 1.0)
        if r:
            return p.stderr.readline().decode().rstrip("\n")
    sys.exit("FAIL: no output from tcp_offload in time")


def ask(port, n):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"%d\n" % n)
        return s.makefile().readline().strip()


def main():
    deadline = time.monotonic() + 120
    # Started without the socket: a clear error, no server.
    r = subprocess.run([BIN], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert r.returncode == 2 and b"descriptor 3" in r.stderr, r
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    # The socket is the shell's stdin; it moves it to descriptor 3 and execs the server.
    p = subprocess.Popen(["/bin/sh", "-c", 'exec "$0" 3<&0 </dev/null', BIN], stdin=listener.fileno(),
                         stderr=subprocess.PIPE, start_new_session=True)
    listener.close()
    try:
        serve(p, port, deadline)
        # The server reaped its workers and fork server before it exited: its group is empty.
        try:
            os.killpg(p.pid, 0)
            sys.exit("FAIL: processes of tcp_offload are left after it exited")
        except ProcessLookupError:
            pass
    finally:
        try:
            os.killpg(p.pid, signal.SIGKILL)   # a failed check leaves no server or worker behind
        except ProcessLookupError:
            pass
    print("PASS: tcp_offload answered, cancelled the task of a client that left, shut down cleanly")


def serve(p, port, deadline):

    assert ask(port, 20) == "6765"
    assert line(p, deadline) == "answered"
    # fib(90) by naive recursion would run for centuries: leave instead.
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"90\n")
    s.close()
    assert line(p, deadline) == "CF_ECANCELED"
    assert ask(port, 10) == "55"          # the pool replaced the stopped worker
    assert line(p, deadline) == "answered"
    idle = socket.create_connection(("127.0.0.1", port))   # open at shutdown
    busy = socket.create_connection(("127.0.0.1", port))   # a task in flight at shutdown
    busy.sendall(b"91\n")
    p.send_signal(signal.SIGTERM)
    rest = p.communicate(timeout=max(1, deadline - time.monotonic()))[1].decode().splitlines()
    assert rest[-1] == "shut down", rest
    assert p.returncode == 0, p.returncode
    assert set(rest[:-1]) <= {"CF_ECANCELED"}, rest
    idle.close()
    busy.close()


if __name__ == "__main__":
    main()
