"""A throwaway single-node SLURM cluster (munged + slurmctld + slurmd) for integration tests.

Everything lives under one temporary directory: configuration, state, spool, logs and the
MUNGE socket and key. The daemons run in the foreground as children of this process on free
loopback ports, so the cluster neither needs nor touches a system SLURM, and `stop()` ends
exactly the processes `start()` began, by PID. Clients reach it through `SLURM_CONF`
(see `SlurmCluster.env`), which sbatch exports into every job.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITION = "protsae-test"


def slurm_missing() -> list[str]:
    """Daemons and clients this harness needs that are not on PATH (or in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    tools = (*DAEMONS, "sbatch", "squeue", "sinfo", "scancel", "scontrol")
    return [t for t in tools if shutil.which(t, path=path) is None]


def skip_reason() -> str | None:
    """Why SLURM cannot be brought up here (its programs are missing); None if it can.

    Installing them is set-up's job, not the tests': ``make setup`` (tools/setup.sh) installs
    slurm-wlm and munge with apt-get when run as root.
    """
    missing = slurm_missing()
    if not missing:
        return None
    return (
        f"SLURM/MUNGE programs not installed ({', '.join(missing)}); install the Debian packages "
        "slurm-wlm and munge (`make setup` as root does)"
    )


def _which(tool: str) -> str:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which(tool, path=path)
    if found is None:
        raise FileNotFoundError(f"{tool} not found on PATH or in /usr/sbin")
    return found


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("/proc/meminfo has no MemTotal line")


def _tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError as err:
        return f"<unreadable: {err}>"


@dataclass
class SlurmCluster:
    """A running (or startable) private cluster rooted at `root`."""

    root: Path
    hostname: str = field(default_factory=lambda: socket.gethostname().split(".")[0])
    partition: str = PARTITION
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    memory_mb: int = field(default_factory=_memory_mb)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, squeue, snakemake) to reach this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    @property
    def munge_dir(self) -> Path:
        return self.root / "munge"

    # configuration ---------------------------------------------------------------------

    def write_config(self) -> None:
        """Write slurm.conf, gres.conf and a fresh MUNGE key under `root`."""
        for sub in ("etc", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)  # munged (another user when root) must traverse it
        user = getpass.getuser()
        ctld_port, slurmd_port = _free_ports(2)
        socket_path = self.munge_dir / "munge.socket"
        # A little under MemTotal so slurmd never finds less memory than configured.
        real_memory = max(256, int(self.memory_mb * 0.95))
        self.conf.write_text(
            "\n".join(
                [
                    "# written by tests/integration/slurm_cluster.py for one test session",
                    "ClusterName=protsae-test",
                    f"SlurmctldHost={self.hostname}(127.0.0.1)",
                    f"SlurmctldPort={ctld_port}",
                    f"SlurmdPort={slurmd_port}",
                    f"SlurmUser={user}",
                    f"SlurmdUser={user}",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={socket_path}",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.root / 'state' / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'spool' / 'slurmd.pid'}",
                    f"SlurmctldLogFile={self.log_dir / 'slurmctld.log'}",
                    f"SlurmdLogFile={self.log_dir / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    "MpiDefault=none",
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SchedulerType=sched/backfill",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "GresTypes=gpu",
                    "ReturnToService=2",
                    "MinJobAge=300",
                    "KillWait=5",
                    "InactiveLimit=0",
                    "SlurmdTimeout=120",
                    f"NodeName={self.hostname} NodeAddr=127.0.0.1 CPUs={self.cpus} "
                    f"RealMemory={real_memory} Gres=gpu:1 State=UNKNOWN",
                    f"PartitionName={self.partition} Nodes={self.hostname} Default=YES "
                    "MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        # A placeholder device: the scheduler counts one GPU, nothing opens it.
        (self.conf.parent / "gres.conf").write_text(
            f"NodeName={self.hostname} Name=gpu File=/dev/null\n"
        )
        self.munge_dir.mkdir(exist_ok=True)
        self.munge_dir.chmod(0o755)  # munged wants its socket directory traversable by all
        key = self.munge_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        if os.geteuid() == 0:
            munge = pwd.getpwnam("munge")
            for path in (self.munge_dir, key):
                os.chown(path, munge.pw_uid, munge.pw_gid)

    # processes ---------------------------------------------------------------------------

    def _spawn(self, name: str, cmd: list[str], **kw) -> None:
        out = open(self.log_dir / f"{name}.out", "wb")  # noqa: SIM115 - lives with the process
        self.procs[name] = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **kw
        )
        out.close()

    def start(self, timeout: float = 90) -> None:
        """Write the configuration, start the three daemons, wait until the node is idle."""
        self.write_config()
        try:
            self._start_daemons(timeout)
        except BaseException:
            self.stop()
            raise

    def _start_daemons(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        munge_user = {"user": "munge", "group": "munge"} if os.geteuid() == 0 else {}
        self._spawn(
            "munged",
            [
                _which("munged"),
                "--foreground",
                f"--socket={self.munge_dir / 'munge.socket'}",
                f"--key-file={self.munge_dir / 'munge.key'}",
                f"--log-file={self.munge_dir / 'munged.log'}",
                f"--pid-file={self.munge_dir / 'munged.pid'}",
                f"--seed-file={self.munge_dir / 'munged.seed'}",
            ],
            **munge_user,
        )
        self._wait(lambda: (self.munge_dir / "munge.socket").exists(), deadline, "munged socket")
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf)])
        self._wait(self._controller_up, deadline, "slurmctld to answer")
        self._spawn("slurmd", [_which("slurmd"), "-D", "-f", str(self.conf)])
        self._wait(lambda: self.node_state() == "idle", deadline, "the node to be idle")

    def _controller_up(self) -> bool:
        return self._client(["scontrol", "ping"]).returncode == 0

    def _client(self, cmd: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(
            [_which(cmd[0]), *cmd[1:]], env=self.env, capture_output=True, text=True, timeout=30
        )

    def node_state(self) -> str:
        """The node's state as sinfo prints it (idle, mix, alloc, down*, ...)."""
        done = self._client(["sinfo", "-h", "-N", "-n", self.hostname, "-o", "%t"])
        return done.stdout.strip() if done.returncode == 0 else f"sinfo failed: {done.stderr}"

    def _wait(self, ready, deadline: float, what: str) -> None:
        while True:
            dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
            if dead:
                raise RuntimeError(f"waiting for {what}: daemon(s) exited {dead}\n{self.logs()}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"timed out waiting for {what} (node state: {self.node_state()})\n{self.logs()}"
                )
            time.sleep(0.5)

    def logs(self) -> str:
        """The tail of every daemon log, for failure messages."""
        files = [self.munge_dir / "munged.log", *sorted(self.log_dir.glob("*"))]
        return "\n".join(f"--- {f.name} ---\n{_tail(f)}" for f in files if f.exists())

    def stop(self, timeout: float = 30) -> None:
        """Cancel remaining jobs, then end the daemons this object started (by PID), newest first."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            self._client(["scancel", "--partition", self.partition])
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not self._client(["squeue", "-h", "-o", "%i"]).stdout.strip():
                    break
                time.sleep(0.5)
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)

    def __enter__(self) -> SlurmCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def new_cluster_root() -> Path:
    """A fresh directory outside pytest's 0700 tmp tree, so the munge user can traverse it."""
    return Path(tempfile.mkdtemp(prefix="protsae-slurm-"))


if __name__ == "__main__":  # manual smoke test: bring the cluster up, show sinfo, tear down
    reason = skip_reason()
    if reason:
        raise SystemExit(reason)
    root = new_cluster_root()
    with SlurmCluster(root) as cluster:
        print(cluster._client(["sinfo", "-N", "-l"]).stdout)
        job = cluster._client(["sbatch", "--parsable", "--gpus=1", "--wrap", "env"])
        print("submitted", job.stdout, job.stderr)
        time.sleep(3)
    shutil.rmtree(root, ignore_errors=True)
