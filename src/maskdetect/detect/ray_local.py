"""The Ray that `batch` runs on: a cluster it is given, else a local instance that only this machine
can reach and that ends with the process that started it.

A local instance takes the node address 127.0.0.1, so that Ray binds every server (GCS, raylet,
workers, agents) to loopback; by default it takes the host's network address and listens on all
interfaces. Ray ends its GCS and raylet when their driver dies, even by SIGKILL, but the dashboard
and runtime-env agents the raylet starts hang on for good; so a small watchdog process
(`python -m maskdetect.detect.ray_local PID`, standard library only, Linux's /proc) notes every
process the instance starts and, once the driver is gone (the pipe to it closes: exit, crash, kill -9),
ends those still running. Ray itself is imported by the caller (`ray_batch._import_ray`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Ray's own switch: off, a local node takes the loopback address (its default on macOS and Windows).
CLUSTER_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
POLL_S = 0.2
GRACE_S = 2.0


@contextlib.contextmanager
def ray_session(ray: Any, address: str | None) -> Iterator[None]:
    """Ray for one batch run: this process's if it has one, else `address`'s cluster, else a local
    instance on 127.0.0.1 that ends with this process (see the module's docstring).

    >>> ray_session.__name__  # starts Ray: see tests/test_ray_batch_cluster.py
    'ray_session'
    """
    common = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if ray.is_initialized():  # the caller's own Ray: theirs to end
        yield
        return
    if address is not None:
        if on_loopback(address):  # a driver must take the cluster's node address, or it waits forever
            with _loopback_node(ray):
                ray.init(address=address, _node_ip_address=LOOPBACK, **common)
        else:
            ray.init(address=address, **common)
        try:
            yield
        finally:
            ray.shutdown()
        return
    watchdog = _start_watchdog()
    try:
        with _loopback_node(ray):
            ray.init(address="local", _node_ip_address=LOOPBACK, **common)
        if watchdog is not None:
            try:
                watchdog.stdin.write(b"started\n")  # Ray's processes are up: adopt no more of ours
                watchdog.stdin.flush()
            except BrokenPipeError:  # the run goes on; only a kill -9 would leave Ray's agents behind
                log.warning("the watchdog of the local Ray ended early (exit status %s)", watchdog.poll())
        node = ray.util.get_node_ip_address()
        if not ipaddress.ip_address(node).is_loopback:  # fail closed rather than listen on the network
            raise RuntimeError(f"the local Ray instance took the address {node}, not {LOOPBACK}; "
                               f"start one with `ray start --head` and give its --address")
        yield
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if watchdog is not None:
            watchdog.stdin.close()  # what Ray left running is ended now
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog.wait(timeout=GRACE_S + 3)


def on_loopback(address: str) -> bool:
    """Whether a Ray address (HOST:PORT) names this machine's loopback, as a local instance's does.

    >>> on_loopback("127.0.0.1:6379"), on_loopback("localhost:6379"), on_loopback("10.0.0.5:6379")
    (True, True, False)
    >>> on_loopback("auto"), on_loopback("ray://head:10001")
    (False, False)
    """
    host = address.rpartition(":")[0] if ":" in address and "://" not in address else ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@contextlib.contextmanager
def _loopback_node(ray: Any) -> Iterator[None]:
    # The switch is read when Ray is imported (ray_constants) and by the processes it starts (the
    # environment): both are set for the start, then put back for any later connection.
    constants = ray._private.ray_constants
    saved_env, saved_flag = os.environ.get(CLUSTER_SWITCH), constants.ENABLE_RAY_CLUSTER
    os.environ[CLUSTER_SWITCH], constants.ENABLE_RAY_CLUSTER = "0", False
    try:
        yield
    finally:
        constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(CLUSTER_SWITCH, None)
        else:
            os.environ[CLUSTER_SWITCH] = saved_env


def _start_watchdog() -> subprocess.Popen | None:
    if not os.path.isdir("/proc/self"):  # Linux only; elsewhere Ray's own fate sharing alone
        log.debug("no /proc: Ray's agents are not watched")
        return None
    watchdog = subprocess.Popen([sys.executable, "-m", "maskdetect.detect.ray_local", str(os.getpid())],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    # Ray starts only once the watchdog has seen what ran before it: what started after is Ray's.
    if watchdog.stdout.readline() != b"watching\n":
        log.warning("the watchdog of the local Ray did not start (exit status %s)", watchdog.wait())
        return None
    watchdog.stdout.close()
    return watchdog


def _process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, start time in clock ticks) of every live process, from /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # ended meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()  # after "pid (name) ": state, ppid, ...
        if fields[0] != b"Z":  # a zombie has ended already, and has no children
            table[int(entry.name)] = (int(fields[1]), fields[19].decode())
    return table


def _descendants(roots: set[int], table: dict[int, tuple[int, str]]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _start) in table.items():
        children.setdefault(parent, []).append(pid)
    found, stack = set(), list(roots)
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


def watch(driver: int) -> None:
    """Note the processes `driver` starts until it writes a line, and their descendants until its
    pipe closes; then end those still running (SIGTERM, SIGKILL after a grace period).

    A process is known by its pid and start time, so a reused pid is never taken for one of them.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: outlive the driver
    table = _process_table()
    before = {(pid, table[pid][1]) for pid in _descendants({driver}, table)}  # not Ray's, not ours
    print("watching", flush=True)
    tracked: dict[int, str] = {}
    adopting = True
    while True:
        if select.select([sys.stdin.buffer], [], [], POLL_S)[0]:
            line = os.read(sys.stdin.fileno(), 64)
            if not line:
                break
            adopting = False
        table = _process_table()
        roots = {pid for pid, start in tracked.items() if table.get(pid, (0, ""))[1] == start}
        for pid in _descendants(roots | ({driver} if adopting else set()), table) - {os.getpid()}:
            if (pid, table[pid][1]) not in before:
                tracked[pid] = table[pid][1]
    _end(tracked)


def _end(tracked: dict[int, str]) -> None:
    def alive() -> set[int]:
        table = _process_table()
        mine = {pid for pid, start in tracked.items() if table.get(pid, (0, ""))[1] == start}
        for pid in _descendants(mine, table) - {os.getpid()}:  # started since the last look
            tracked.setdefault(pid, table[pid][1])
        return {pid for pid in tracked if table.get(pid, (0, ""))[1] == tracked[pid]}

    deadline = time.monotonic() + GRACE_S
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)


if __name__ == "__main__":
    watch(int(sys.argv[1]))
