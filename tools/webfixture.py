# Copyright (c) 2026 The cfutures authors. MIT License: see LICENSE.
"""webfixture.py - a real nginx on a loopback port, for the crawler tests and benchmarks.

    with Nginx(root) as ng:       # serves `root` on http://127.0.0.1:<ng.port>/
        ...                       # /old.html answers 301 -> /p/2.html

nginx runs in the foreground of its own temporary prefix (config, logs, pid),
listening on 127.0.0.1 only, and is stopped (and waited for) on exit.
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time

NGINX_CONF = """\
{user}
worker_processes {workers};
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    types {{
        text/html html;
        text/plain txt;
        application/octet-stream bin;
    }}
    default_type application/octet-stream;
    access_log {access_log};
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 100000;
    server {{
        listen 127.0.0.1:{port};
        server_name localhost;
        root {root};
        location = /old.html {{ return 301 /p/2.html; }}
    }}
}}
"""


def free_port():
    """A port that was free a moment ago (nginx retries on a clash; see Nginx.start)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0, proc=None):
    """Wait until something accepts on 127.0.0.1:port; False on timeout or if proc died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Nginx:
    def __init__(self, root, workers=1, access_log=False):
        self.root = os.path.abspath(root)
        self.workers = workers
        self.access_log = access_log
        self.prefix = None
        self.proc = None
        self.port = None

    def start(self):
        exe = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.path.exists(exe):
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.prefix = tempfile.mkdtemp(prefix="cf-nginx-")
        # Workers run as the invoking user: as root, say so (nginx would switch to nobody).
        user = "user root;" if os.geteuid() == 0 else ""
        for attempt in range(5):
            self.port = free_port()
            conf = os.path.join(self.prefix, "nginx.conf")
            with open(conf, "w") as f:
                f.write(NGINX_CONF.format(user=user, workers=self.workers, prefix=self.prefix,
                                          port=self.port, root=self.root,
                                          access_log=os.path.join(self.prefix, "access.log")
                                          if self.access_log else "off"))
            self.proc = subprocess.Popen([exe, "-p", self.prefix, "-c", conf, "-g", "daemon off;"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if wait_port(self.port, proc=self.proc):
                return self
            self.stop()
            self.prefix = tempfile.mkdtemp(prefix="cf-nginx-")
        raise RuntimeError("nginx did not start")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown of master and workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.prefix:
            shutil.rmtree(self.prefix, ignore_errors=True)
            self.prefix = None

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
