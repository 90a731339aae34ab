"""A throw-away single-node SLURM cluster for tests.

`SlurmCluster` writes ``slurm.conf``, ``cgroup.conf`` and ``gres.conf`` into a directory of
its own, starts ``munged``, ``slurmctld -D`` and ``slurmd -D`` as child processes, waits
until ``sinfo`` shows the node idle, and on `stop` ends exactly the processes it started.

Everything the cluster needs lives in that directory: the MUNGE key and socket, the
controller's state, the daemons' logs, and the ports are picked free on 127.0.0.1. So
several clusters (another test run, another user's) can run on the same machine side by
side without touching the machine's ``/etc/slurm`` or a system-wide ``munged``. Client
commands (``sbatch``, ``squeue``, ``scancel``) find the cluster through the ``SLURM_CONF``
environment variable: run them with `SlurmCluster.env`. Inside a job, Snakemake's jobstep
calls ``srun`` with ``SLURM_CONF`` removed from the environment; so ``slurmd`` runs in a
mount namespace of its own in which the cluster's configuration directory is mounted
over ``/etc/slurm``, and the jobs it starts inherit that view.

The configuration is the smallest one SLURM 22.05 (Debian 12) runs inside a container
without systemd or cgroup delegation: ``proctrack/linuxproc`` (tracks job processes by
parent id instead of cgroups), ``task/none``, ``select/cons_tres`` and no accounting
database. Without accounting ``sacct`` fails, so Snakemake's SLURM plugin must be told
``--slurm-status-command squeue``; ``MinJobAge=3600`` keeps finished jobs visible to
``squeue`` long enough for that.

Run ``python tests/slurm_cluster.py`` to start a cluster by hand and keep it up until
Ctrl-C, which is handy to try the workflow's SLURM profile interactively.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

logger = logging.getLogger(__name__)

#: The programs the cluster needs; `missing_requirements` names those not installed.
REQUIRED_PROGRAMS = (
    "munged",
    "slurmctld",
    "slurmd",
    "sinfo",
    "sbatch",
    "squeue",
    "scancel",
    "unshare",
)

#: Name of the single compute node and of its partitions: the default one, and one for GPU
#: jobs (the same node), as clusters that keep their GPUs apart have.
NODE_NAME = "localnode"
PARTITION_NAME = "debug"
GPU_PARTITION_NAME = "gpu"

#: Finished jobs stay visible to ``squeue`` for this many seconds. The Snakemake plugin
#: trusts ``squeue`` only when this is at least 3 x its first status-check delay; an hour
#: also lets a test session check the final state of every job it ran.
MIN_JOB_AGE_SECONDS = 3600


class SlurmClusterError(RuntimeError):
    """The local cluster could not be started; the message includes the daemons' logs."""


def missing_requirements() -> str | None:
    """Say why a local SLURM cluster cannot run here, or return None when it can.

    Returns:
        A sentence fit for ``pytest.skip`` naming what is missing and how to install it,
        or None when every program is installed and we run as root (``slurmd`` must be
        root to start jobs as the submitting user).
    """
    missing = [program for program in REQUIRED_PROGRAMS if shutil.which(program) is None]
    if missing:
        return (
            f"SLURM is not installed (missing: {', '.join(missing)}); "
            "install it with `bash .ci/install-slurm.sh` (Debian packages slurmctld, "
            "slurmd, slurm-client, munge)"
        )
    if os.geteuid() != 0:
        return "a local SLURM cluster needs root (slurmd starts jobs as their user)"
    if not Path("/etc/slurm").is_dir():
        return "/etc/slurm is missing (the slurm-client package creates it)"
    probe = subprocess.run(
        ["unshare", "--mount", "true"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return (
            "cannot create a mount namespace (`unshare --mount` failed: "
            f"{probe.stderr.strip()}); slurmd needs one to show its jobs this cluster's "
            "slurm.conf at /etc/slurm"
        )
    return None


def _free_port() -> int:
    """Ask the kernel for a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _memory_mb() -> int:
    """Total memory of this machine in MB, as ``slurmd`` will see it."""
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise SlurmClusterError("cannot read MemTotal from /proc/meminfo")


class SlurmCluster:
    """A single-node SLURM cluster whose files all live under ``root``.

    Args:
        root: Directory for the configuration, key, state and logs. Created if missing;
            use a fresh temporary directory per cluster. When None, a temporary directory
            is created and removed again by `stop`.
        cpus: CPUs the node offers. Defaults to the CPUs this process may use, which is
            what a job's ``--cpus-per-task`` is checked against.
        memory_mb: Memory the node offers in MB. Defaults to 90 % of the machine's memory
            (``slurmd`` is told to trust the configuration rather than measure).
        gpus: Generic GPU resources (GRES ``gpu``) the node advertises. They have no device
            behind them: a job that asks for ``--gpus=1`` is scheduled and runs, but sees no
            CUDA device. This lets a test check that a profile's GPU request is one SLURM
            accepts. 0 makes GPU jobs unschedulable, as on a CPU-only cluster.
        gpu_type: the GPU model the GRES names (``--gres=gpu:<type>:1`` then asks for it;
            a plain ``gpu:1`` takes any); None for untyped GPUs.

    Use as a context manager, or call `start` and `stop` yourself::

        with SlurmCluster(tmp_path / "slurm") as cluster:
            subprocess.run(["sbatch", "--wrap", "hostname"], env=cluster.env(), check=True)
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        cpus: int | None = None,
        memory_mb: int | None = None,
        gpus: int = 2,
        gpu_type: str | None = "tesla",
    ) -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="slurm-")) if root is None else Path(root)
        self.cpus = cpus if cpus is not None else len(os.sched_getaffinity(0))
        self.memory_mb = memory_mb if memory_mb is not None else int(_memory_mb() * 0.9)
        self.gpus = gpus
        self.gpu_type = gpu_type
        if self.cpus < 1 or self.memory_mb < 1 or self.gpus < 0:
            raise ValueError(
                f"cpus ({self.cpus}) and memory_mb ({self.memory_mb}) must be positive and "
                f"gpus ({self.gpus}) not negative"
            )
        self.conf_dir = self.root / "etc"
        self.conf_path = self.conf_dir / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # ----------------------------------------------------------------------------------
    # Configuration

    @property
    def _typed(self) -> str:
        return f"{self.gpu_type}:" if self.gpu_type else ""

    def env(self) -> dict[str, str]:
        """The environment for client commands (and Snakemake) to talk to this cluster."""
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf_path)
        # Settings of an enclosing SLURM job would leak into sbatch calls made from here.
        for name in list(env):
            if name.startswith(("SLURM_", "SBATCH_", "SRUN_")) and name != "SLURM_CONF":
                del env[name]
        return env

    def _write_config(self) -> None:
        """Write slurm.conf, cgroup.conf and a fresh MUNGE key under ``root``."""
        for sub in ("etc", "munge", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # munged refuses a key that others can read, and a socket directory others can
        # write to.
        os.chmod(self.root, 0o755)
        os.chmod(self.root / "munge", 0o755)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)

        hostname = socket.gethostname().split(".")[0]
        controller_port, node_port = _free_port(), _free_port()
        while node_port == controller_port:
            node_port = _free_port()
        log = self.root / "log"
        self.conf_path.write_text(
            "\n".join(
                [
                    f"ClusterName=ddpmtest{controller_port}",
                    # slurmctld checks that it runs on the host named here.
                    f"SlurmctldHost={hostname}(127.0.0.1)",
                    f"SlurmctldPort={controller_port}",
                    f"SlurmdPort={node_port}",
                    "SlurmUser=root",
                    "SlurmdUser=root",
                    "AuthType=auth/munge",
                    "CredType=cred/munge",
                    f"AuthInfo=socket={self.munge_socket}",
                    f"StateSaveLocation={self.root / 'state'}",
                    f"SlurmdSpoolDir={self.root / 'spool'}",
                    f"SlurmctldPidFile={self.root / 'slurmctld.pid'}",
                    f"SlurmdPidFile={self.root / 'slurmd.pid'}",
                    f"SlurmctldLogFile={log / 'slurmctld.log'}",
                    f"SlurmdLogFile={log / 'slurmd.log'}",
                    "SlurmctldDebug=info",
                    "SlurmdDebug=info",
                    # No cgroups: a container rarely has a delegated cgroup tree.
                    "ProctrackType=proctrack/linuxproc",
                    "TaskPlugin=task/none",
                    "JobAcctGatherType=jobacct_gather/none",
                    "AccountingStorageType=accounting_storage/none",
                    "JobCompType=jobcomp/none",
                    "SelectType=select/cons_tres",
                    "SelectTypeParameters=CR_Core_Memory",
                    "SchedulerType=sched/backfill",
                    "MpiDefault=none",
                    "ReturnToService=2",
                    # Keep finished jobs in squeue's view (the plugin polls squeue).
                    f"MinJobAge={MIN_JOB_AGE_SECONDS}",
                    # Let a cancelled or timed-out job end quickly.
                    "KillWait=2",
                    "OverTimeLimit=0",
                    "InactiveLimit=0",
                    "SlurmdTimeout=60",
                    # Trust the node line below instead of what slurmd measures.
                    "SlurmdParameters=config_overrides",
                    "MailProg=/bin/true",
                    "GresTypes=gpu",
                    f"NodeName={NODE_NAME} NodeAddr=127.0.0.1 NodeHostname={hostname} "
                    f"CPUs={self.cpus} RealMemory={self.memory_mb} "
                    + (f"Gres=gpu:{self._typed}{self.gpus} " if self.gpus else "")
                    + "State=UNKNOWN",
                    f"PartitionName={PARTITION_NAME} Nodes={NODE_NAME} Default=YES "
                    "MaxTime=INFINITE State=UP",
                    f"PartitionName={GPU_PARTITION_NAME} Nodes={NODE_NAME} Default=NO "
                    "MaxTime=INFINITE State=UP",
                    "",
                ]
            )
        )
        # slurmd reads cgroup.conf next to slurm.conf even with the cgroup plugins off.
        (self.conf_dir / "cgroup.conf").write_text("CgroupPlugin=autodetect\nIgnoreSystemd=yes\n")
        # SLURM drops a GPU without a device file, so each fake GPU is a copy of /dev/null's
        # character device (an empty file works too, with an error in slurmd's log).
        gres_lines = ["AutoDetect=off"]
        for index in range(self.gpus):
            device = self.root / "dev" / f"fakegpu{index}"
            device.parent.mkdir(exist_ok=True)
            try:
                os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            except OSError:
                device.touch()
            kind = f" Type={self.gpu_type}" if self.gpu_type else ""
            gres_lines.append(f"NodeName={NODE_NAME} Name=gpu{kind} File={device}")
        (self.conf_dir / "gres.conf").write_text("\n".join(gres_lines) + "\n")

    # ----------------------------------------------------------------------------------
    # Daemons

    def _spawn(self, name: str, command: list[str]) -> None:
        """Start one daemon in the foreground, its output going to log/<name>.out."""
        output = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 (kept open)
        try:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env(),
                # Own process group: a Ctrl-C in the terminal reaches us, not the
                # daemons, so `stop` still finds them to end in order.
                start_new_session=True,
            )
        finally:
            output.close()
        self._processes[name] = process
        logger.info("started %s (pid %d)", name, process.pid)

    def start(self, timeout: float = 60.0) -> SlurmCluster:
        """Write the configuration, start the daemons and wait until the node is idle.

        Args:
            timeout: Seconds to wait for the node to come up idle.

        Raises:
            SlurmClusterError: a daemon exited or the node did not become idle in time;
                the message ends with the tail of every daemon's log.
        """
        if self._processes:
            raise SlurmClusterError("this cluster is already running; call stop() first")
        self._write_config()
        munge_dir = self.root / "munge"
        try:
            self._spawn(
                "munged",
                [
                    "munged",
                    "--foreground",
                    # Running as root is fine for a throw-away test daemon.
                    "--force",
                    f"--socket={self.munge_socket}",
                    f"--key-file={munge_dir / 'munge.key'}",
                    f"--pid-file={munge_dir / 'munged.pid'}",
                    f"--seed-file={munge_dir / 'munged.seed'}",
                    f"--log-file={self.root / 'log' / 'munged.log'}",
                ],
            )
            self._wait_for(lambda: self.munge_socket.exists(), timeout, "munged's socket")
            self._spawn("slurmctld", ["slurmctld", "-D", "-f", str(self.conf_path)])
            self._wait_for(self._controller_answers, timeout, "slurmctld to answer")
            # Inside a job, Snakemake's jobstep calls `srun` with every SLURM_* variable
            # removed, SLURM_CONF included, so srun reads /etc/slurm/slurm.conf. slurmd
            # and the jobs it starts therefore see this cluster's etc/ at /etc/slurm, in
            # a mount namespace of their own: the machine's /etc/slurm stays untouched.
            self._spawn(
                "slurmd",
                [
                    "unshare",
                    "--mount",
                    "--propagation",
                    "private",
                    "sh",
                    "-c",
                    'mount --bind "$0" /etc/slurm && exec slurmd -D -f "$1" -N "$2"',
                    str(self.conf_dir),
                    str(self.conf_path),
                    NODE_NAME,
                ],
            )
            self._wait_for(self._node_idle, timeout, f"node {NODE_NAME} to be idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise SlurmClusterError(
                    f"{name} exited with status {process.returncode}\n{self.logs()}"
                )

    def _wait_for(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            if ready():
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(
                    f"timed out after {timeout} s waiting for {what}\n{self.logs()}"
                )
            time.sleep(0.2)

    def _client(self, *command: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def _controller_answers(self) -> bool:
        return self._client("scontrol", "ping", timeout=10).stdout.count("UP") > 0

    def _node_idle(self) -> bool:
        states = self._client("sinfo", "--noheader", "--format=%T", "--nodes", NODE_NAME)
        return states.returncode == 0 and states.stdout.strip() == "idle"

    def squeue(self) -> list[tuple[str, str, str]]:
        """Jobs the controller knows about (also finished ones) as (job id, name, state)."""
        result = self._client("squeue", "--states=all", "--noheader", "--format=%i|%j|%T")
        if result.returncode != 0:
            raise SlurmClusterError(f"squeue failed: {result.stderr.strip()}")
        return [tuple(line.split("|", 2)) for line in result.stdout.splitlines() if line]

    def stop(self, timeout: float = 15.0) -> None:
        """Cancel remaining jobs and end the daemons this object started, in reverse order.

        Only the process ids that `start` spawned are signalled (SIGTERM, then SIGKILL after
        ``timeout`` seconds). Safe to call twice, and after a failed `start`.
        """
        if "slurmctld" in self._processes and self._processes["slurmctld"].poll() is None:
            # Jobs still running would outlive slurmd (slurmstepd is detached from it).
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._client("scancel", "--full", f"--partition={PARTITION_NAME}", timeout=10)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    states = [state for _, _, state in self.squeue()]
                except (SlurmClusterError, subprocess.TimeoutExpired):
                    break
                if not any(s in ("RUNNING", "COMPLETING", "PENDING") for s in states):
                    break
                time.sleep(0.2)
        for name in reversed(list(self._processes)):
            process = self._processes[name]
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    logger.warning("%s (pid %d) ignored SIGTERM; killing it", name, process.pid)
                    process.kill()
                    process.wait()
            logger.info("stopped %s (pid %d)", name, process.pid)
        self._processes.clear()
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def logs(self, tail_lines: int = 30) -> str:
        """The last lines of every daemon log, for error messages."""
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            lines = path.read_text(errors="replace").splitlines()[-tail_lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reason = missing_requirements()
    if reason:
        raise SystemExit(reason)
    with SlurmCluster() as cluster:
        print(f"SLURM is up; in another shell: export SLURM_CONF={cluster.conf_path}")
        print("Ctrl-C stops it.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
