"""Processes: start a server in its own process group, wait for its socket,
stop it by its own pid/group, and measure a process tree from /proc.

Measurements are read from /proc only (Linux): the tree under a root pid is
found through each process's parent pid; CPU time is utime + stime (plus the
cutime + cstime of reaped children, so a worker that exits mid-run is still
counted) in clock ticks, and its kernel part stime (+ cstime) on its own;
memory is the sum of VmRSS over the tree (and of
PSS, which counts shared pages once).
"""

import os
import signal
import socket
import subprocess
import threading
import time
from typing import NamedTuple

CLK_TCK = os.sysconf("SC_CLK_TCK")


class Stat(NamedTuple):
    """One process's parent, name and CPU ticks so far."""

    ppid: int
    comm: str
    #: user + system, the reaped children's included.
    ticks: int
    #: user + system of the process alone (a shell reaping a build is not busy).
    own: int
    #: system (kernel) time, the reaped children's included.
    kernel: int


def read_stat(pid):
    """The `Stat` of one process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("latin-1")
    except OSError:
        return None
    # comm is in parentheses and may itself contain spaces or parentheses.
    comm = data[data.index("(") + 1 : data.rindex(")")]
    fields = data[data.rindex(")") + 2 :].split()
    # After comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return Stat(int(fields[1]), comm, utime + stime + cutime + cstime, utime + stime, stime + cstime)


def all_stats():
    """{pid: Stat} for every process on the machine."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                stats[int(name)] = st
    return stats


def tree_pids(root, stats=None):
    """The pids of `root` and all its descendants."""
    stats = stats if stats is not None else all_stats()
    children = {}
    for pid, st in stats.items():
        children.setdefault(st.ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
            todo.extend(children.get(pid, []))
    return found


def tree_ticks(root, stats):
    """CPU ticks used so far by the tree under `root`."""
    return sum(stats[pid].ticks for pid in tree_pids(root, stats))


def tree_kernel_ticks(root, stats):
    """The kernel part of `tree_ticks`."""
    return sum(stats[pid].kernel for pid in tree_pids(root, stats))


def machine_busy_ticks():
    """Ticks all CPUs spent in user, nice and system time since boot."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    return int(fields[1]) + int(fields[2]) + int(fields[3])


def own_and_children_ticks():
    """Ticks this process and its reaped children (wrk) have used."""
    t = os.times()
    return (t.user + t.system + t.children_user + t.children_system) * CLK_TCK


def rss_kib(pids):
    """Sum of VmRSS (KiB) over `pids`; processes that are gone count 0."""
    return sum(_status_field(pid, b"VmRSS:") for pid in pids)


def pss_kib(pids):
    """Sum of PSS (KiB) over `pids`: each page shared by n processes counts
    1/n in each, so a preforked tree's shared pages are counted once."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def sleeps(pids):
    """How often the threads of `pids` have gone to sleep so far (voluntary
    context switches, summed over every thread); a process or thread that
    is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        total += sum(_status_field(f"{pid}/task/{tid}", b"voluntary_ctxt_switches:") for tid in tids)
    return total


def _status_field(pid, name):
    """A number from /proc/PID/status (PID may be PID/task/TID), 0 if the
    process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples the memory of a process tree every `interval` s, keeping the
    peak of the summed RSS (what `ps` shows; pages shared between the
    processes count in each) and of the summed PSS (shared pages counted
    once). The tree is re-walked every tenth sample (walking reads all of
    /proc)."""

    def __init__(self, root, interval=0.1):
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self.peak_pss_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        pids, n = [], 0
        while not self._stop.is_set():
            if n % 10 == 0:
                pids = tree_pids(self.root)
            n += 1
            self.peak_kib = max(self.peak_kib, rss_kib(pids))
            self.peak_pss_kib = max(self.peak_pss_kib, pss_kib(pids))
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def start(argv, log_path, env=None, cwd=None):
    """Starts `argv` as the leader of a new process group, output to a log."""
    log = open(log_path, "ab")
    log.write(f"$ {' '.join(argv)}\n".encode())
    log.flush()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    proc.log_file = log
    return proc


def stop(proc, sig=signal.SIGTERM, grace=10.0):
    """Stops a process started by `start`: `sig` to its own process group,
    then SIGKILL to that group after `grace` seconds."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    # Workers may outlive their leader; the group is ours alone.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    proc.log_file.close()


def connectable(addr):
    """Whether something accepts connections on host:port or a Unix path."""
    if isinstance(addr, tuple):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    else:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(addr)
        return True
    except OSError:
        return False
    finally:
        sock.close()


def wait_listening(proc, addr, timeout=30.0):
    """Waits until `addr` accepts connections; raises if `proc` died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before listening")
        if connectable(addr):
            return
        time.sleep(0.05)
    raise RuntimeError(f"not listening on {addr} after {timeout:.0f} s")


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
