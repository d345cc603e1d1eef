"""A real single-node SLURM cluster on this machine, for tests.

Needs Debian's slurm-wlm and munge (``apt-get install -y slurm-wlm munge``,
which .ci/run does) and root. The cluster's configuration, state and logs
live in a temporary directory; ``SLURM_CONF`` points the daemons and the
client commands (and submitit, which calls them) at it.
"""

import os
import pathlib
import random
import shutil
import socket
import subprocess
import time

REQUIRED = ('slurmctld', 'slurmd', 'sbatch', 'squeue', 'scontrol', 'munged')


def missing_tools() -> list[str]:
  return [t for t in REQUIRED if shutil.which(t) is None
          and not os.path.exists(f'/usr/sbin/{t}')]


def _tool(name: str) -> str:
  return shutil.which(name) or f'/usr/sbin/{name}'


class SlurmCluster:
  """Starts munged, slurmctld and slurmd; ``stop()`` ends them."""

  def __init__(self, tmpdir: pathlib.Path):
    self.dir = pathlib.Path(tmpdir)
    self.host = socket.gethostname().split('.')[0]
    self.conf = self.dir / 'slurm.conf'
    self.env = dict(os.environ, SLURM_CONF=str(self.conf))
    self._procs: list[subprocess.Popen] = []

  def _write_conf(self) -> None:
    for sub in ('state', 'spool'):
      (self.dir / sub).mkdir(parents=True, exist_ok=True)
    cpus = os.cpu_count() or 1
    # Job ids start at a random number: a slurmstepd left by an earlier
    # cluster (a killed test run) reports on its job id to whichever
    # controller holds the port, and a new job 1 was once killed 7 s after
    # it started, beside such a report ("step_partial_comp: JobId=1").
    first_job = random.randint(1_000, 60_000_000)
    self.conf.write_text(f"""\
ClusterName=deqclrs
FirstJobId={first_job}
SlurmctldHost={self.host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
JobRequeue=1
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation={self.dir}/state
SlurmdSpoolDir={self.dir}/spool
SlurmctldPidFile={self.dir}/slurmctld.pid
SlurmdPidFile={self.dir}/slurmd.pid
SlurmctldLogFile={self.dir}/slurmctld.log
SlurmdLogFile={self.dir}/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
NodeName={self.host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

  def _start_munge(self) -> None:
    key = pathlib.Path('/etc/munge/munge.key')
    if not key.exists():
      subprocess.run([_tool('mungekey'), '-c'], check=True)
    for d in ('/run/munge', '/var/log/munge', '/var/lib/munge'):
      os.makedirs(d, exist_ok=True)
    ping = subprocess.run(['sh', '-c', 'munge -n | unmunge'],
                          capture_output=True, check=False)
    if ping.returncode != 0:
      subprocess.run([_tool('munged'), '--force'], check=True)

  def start(self, timeout_s: float = 60.0) -> None:
    self._write_conf()
    self._start_munge()
    for daemon in ('slurmctld', 'slurmd'):
      self._procs.append(subprocess.Popen(
          [_tool(daemon), '-D', '-f', str(self.conf)], env=self.env,
          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.time() + timeout_s
    while time.time() < deadline:
      out = subprocess.run(['sinfo', '-h', '-o', '%t'], env=self.env,
                           capture_output=True, text=True, check=False)
      if out.returncode == 0 and out.stdout.strip() in ('idle', 'idle*'):
        return
      time.sleep(1.0)
    self.stop()
    raise RuntimeError(f'SLURM did not come up: {self.log_tail()}')

  def run(self, *args: str) -> str:
    return subprocess.run(list(args), env=self.env, capture_output=True,
                          text=True, check=True).stdout

  def log_tail(self, n: int = 2000) -> str:
    out = []
    for name in ('slurmctld.log', 'slurmd.log'):
      path = self.dir / name
      if path.exists():
        out.append(f'== {name}\n{path.read_text()[-n:]}')
    return '\n'.join(out)

  def stop(self) -> None:
    subprocess.run(['scancel', '--full', '-u', 'root'], env=self.env,
                   capture_output=True, check=False)
    for proc in self._procs:
      proc.terminate()
    for proc in self._procs:
      try:
        proc.wait(timeout=15)
      except subprocess.TimeoutExpired:
        proc.kill()
    self._procs = []
