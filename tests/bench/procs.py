"""Processes of the benchmark: starting them, waiting for them (always
with a bound), stopping them by PID, and reading what /proc says about
them (CPU time, proportional memory). Nothing here knows about paths."""

import os
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTED = []  # every Proc still to be stopped, for the driver's cleanup


class BenchError(Exception):
    pass


def wait_until(what, check, seconds=15.0, step=0.01):
    """Poll check() until it returns something true; fail after seconds."""
    end = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise BenchError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(step)


class Proc:
    """A long-lived process (server, relay, hold client) in its own process
    group, stdout and stderr in files under logdir."""

    def __init__(self, name, argv, logdir, env=None, stdin=False):
        self.name = name
        self.out_path = os.path.join(logdir, name + ".out")
        self.err_path = os.path.join(logdir, name + ".err")
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.p = subprocess.Popen(
                argv, stdout=out, stderr=err, env=env, start_new_session=True,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, text=True)
        self.pid = self.p.pid
        STARTED.append(self)

    def output(self):
        with open(self.out_path) as f:
            return f.read()

    def errors(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.p.poll() is None

    def wait_line(self, prefix, count=1, seconds=15.0):
        """Wait until stdout has count lines starting with prefix; they are returned."""
        def check():
            lines = [l for l in self.output().splitlines() if l.startswith(prefix)]
            if len(lines) >= count:
                return lines
            if not self.alive():
                raise BenchError(f"{self.name} exited ({self.p.returncode}) before "
                                 f"printing '{prefix}': {self.errors()[-800:]}")
            return None
        return wait_until(f"'{prefix}' from {self.name}", check, seconds)

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def stop(self):
        """TERM the process group (its leader is our child, not yet reaped,
        so the group id cannot have been reused), then KILL what is left."""
        if self in STARTED:
            STARTED.remove(self)
        if self.p.stdin:
            try:
                self.p.stdin.close()
            except OSError:
                pass
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children (socat's forks) may outlive the leader briefly
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_all():
    for proc in list(STARTED):
        proc.stop()


def run_client(argv, seconds, env=None, err_path=None):
    """Run a measuring client to completion; its 'key value' lines as a
    dict. It runs in its own process group, killed whole on a timeout."""
    err = open(err_path, "w") if err_path else subprocess.DEVNULL
    try:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, env=env, text=True,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            out, _ = p.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)  # the group of our own child
            p.communicate()
            raise BenchError(f"client did not finish within {seconds:.0f} s: {' '.join(argv)}")
    finally:
        if err_path:
            err.close()
    if p.returncode != 0:
        tail = open(err_path, errors="replace").read()[-800:] if err_path else ""
        raise BenchError(f"client failed ({p.returncode}): {' '.join(argv)}\n{tail}")
    values = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        values[key] = float(value)
    return values


# ------------------------------------------------------------------ /proc

def _children_map():
    kids = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pids):
    """The PIDs given and all their live descendants."""
    kids = _children_map()
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(kids.get(pid, []))
    return found


def cpu_seconds(pids):
    """user+system time of the trees of pids, including their reaped
    children (so socat's per-connection forks count once they are waited for)."""
    ticks = 0
    for pid in tree(pids):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return ticks / CLK_TCK


def memory_kib(pids):
    """(RSS, PSS) of the trees of pids, in KiB, from /proc/PID/smaps_rollup.
    RSS is what the benchmark reports. PSS counts a page shared by n
    processes 1/n in each: for a single process its growth is the growth
    of its RSS, but for forked children (socat) it does not count the
    pages they share with their parent once per child, as RSS does."""
    rss = pss = 0
    for pid in tree(pids):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
    return rss, pss


def descendants(pids):
    return len(tree(pids)) - len(pids)


def listening(port):
    """True when something listens on 127.0.0.1:port (read from /proc, so
    nothing connects to it)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            if cols[1] == want and cols[3] == "0A":
                return True
    return False


def free_port():
    """A port the kernel picks for 127.0.0.1 (for relays that must be told
    their port); never one handed out before in this run."""
    import socket
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


_given = set()
