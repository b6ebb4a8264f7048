"""A command's processes (the demo's training, predict's shards): one by default; `--nproc N`
starts N on this machine (torch.multiprocessing, a file rendezvous in a temporary folder); under
`torchrun` this process is one of those torchrun started (its RANK, LOCAL_RANK, WORLD_SIZE,
MASTER_ADDR and MASTER_PORT), on one machine or several. With more than one they form a process
group: gloo on CPUs, nccl with one GPU per process."""

from __future__ import annotations

import datetime
import gc
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# How long the processes wait for each other to join the group, and the group's collectives (DDP's
# all-reduces) for a slow process. A process that fails before it joins -- on another machine, its
# torchrun cannot stop ours -- must end the others' wait with an error, not leave them waiting
# (with predict's week-long last wait, they would have waited a week).
STARTUP = datetime.timedelta(minutes=10)


@dataclass(frozen=True)
class Process:
    """This process's place among the command's: its rank, how many there are, its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    waits: object = None  # the gloo group of wait_for_all, with run()'s timeout

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mean(self, values: list[float]) -> list[float]:
        """Each value averaged over the processes. Every process gets the same numbers back, so
        decisions taken from them (how many steps fit the budget, when to stop) agree: a process
        that stopped alone would leave the others waiting in DDP's all-reduce for ever."""
        if self.world_size == 1:
            return values
        import torch.distributed as dist

        total = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return (total / self.world_size).tolist()

    def wait_for_all(self) -> None:
        """Returns once every process has called it, or raises if one has ended without (gloo
        sees its connections close); waits for a slow one up to run()'s timeout."""
        if self.world_size > 1:
            torch.distributed.barrier(group=self.waits)


def launched_by_torchrun() -> bool:
    return "WORLD_SIZE" in os.environ


def check(nproc: int | None, device: str, command: str) -> tuple[int, str]:
    """(how many processes there will be, who said so: "--nproc" or "torchrun's WORLD_SIZE"),
    or a ValueError saying what is wrong with --nproc, --device or torchrun's environment;
    called before any work."""
    if launched_by_torchrun():
        if nproc is not None:
            raise ValueError(
                f"--nproc {nproc}: this process is one of those torchrun started (WORLD_SIZE="
                f"{os.environ['WORLD_SIZE']}), and each would start {nproc} more; leave --nproc "
                "out (torchrun's --nproc-per-node sets the count)"
            )
        missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
        if missing:
            raise ValueError(
                f"WORLD_SIZE is set but {', '.join(missing)} not: start the {command}'s processes "
                "with torchrun (which sets them all), or unset WORLD_SIZE for one process"
            )
        world_size, who = int(os.environ["WORLD_SIZE"]), "torchrun's WORLD_SIZE"
        per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    else:
        world_size = per_machine = 1 if nproc is None else nproc
        who = "--nproc"
        if world_size < 1:
            raise ValueError(f"--nproc must be >= 1, got {world_size}")
    if world_size > 1 and not torch.distributed.is_available():
        raise ValueError(f"{who} {world_size}: this torch was built without torch.distributed")
    if device == "cuda":
        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus < per_machine:
            raise ValueError(
                f"--device cuda: {per_machine} process(es) on this machine need one GPU each, "
                f"and this machine has {gpus}"
            )
    return world_size, who


def run(
    work: Callable[..., object],
    nproc: int | None,
    device: str,
    timeout: datetime.timedelta | None = None,
):
    """Calls work(process=...) in each of the command's processes (check() first) and returns
    what it returned when it ran here alone, None after --nproc's processes are done. With
    several, each process exits once its work is done and the group is down, with work's return
    value as exit status when that is an int (else 0): under torchrun this does not return.
    `timeout`: how long a process that is done waits for the slowest (Process.wait_for_all, and
    the last wait before they all leave); default torch's (30 minutes)."""
    if launched_by_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        world_size = int(os.environ["WORLD_SIZE"])
        _in_group(work, rank, local_rank, world_size, device, "env://", timeout)
    elif nproc is None or nproc == 1:
        return work(process=Process(device=torch.device(device)))
    else:
        # Each process gets its share of this machine's threads (torchrun gives each one).
        threads = max(1, torch.get_num_threads() // nproc)
        with tempfile.TemporaryDirectory(prefix="roiops-processes-") as folder:
            torch.multiprocessing.spawn(
                _spawned,
                args=(nproc, device, f"file://{folder}/rendezvous", threads, work, timeout),
                nprocs=nproc,
            )
    return None


def _spawned(rank: int, nproc: int, device: str, rendezvous: str, threads: int, work, timeout):
    if device == "cpu":
        torch.set_num_threads(threads)
    _in_group(work, rank, rank, nproc, device, rendezvous, timeout)


def _in_group(work, rank, local_rank, world_size, device, rendezvous, timeout):
    import torch.distributed as dist
    from torch.distributed.constants import default_pg_timeout

    if device == "cuda":
        where = torch.device("cuda", local_rank)
        torch.cuda.set_device(where)
    else:
        where = torch.device("cpu")
    backend = "nccl" if device == "cuda" else "gloo"
    try:
        dist.init_process_group(
            backend, init_method=rendezvous, rank=rank, world_size=world_size, timeout=STARTUP
        )
    except dist.DistStoreError as err:  # torch's message: "wait timeout after 600000ms, keys: ..."
        raise TimeoutError(
            f"process {rank} of {world_size}: the others had not all joined the process group "
            f"after {STARTUP} -- one may have failed before joining (see its output, on its "
            "machine)"
        ) from err
    # The waits for the slowest have their own group: gloo, so that a process waiting on a GPU
    # machine does not hold a spinning NCCL kernel (or meet NCCL's watchdog), with the long
    # timeout that the group's startup must not have.
    waits = dist.new_group(backend="gloo", timeout=timeout or default_pg_timeout)
    result = work(process=Process(rank, world_size, where, waits))
    # Rank 0 may go on alone after the shared work (the demo evaluates): the others wait for it
    # here instead of tearing down their end of the group under it, then all leave together.
    # (After a failure there is no teardown: the others may be inside a collective, and the
    # launcher ends them.)
    dist.barrier(group=waits)
    dist.destroy_process_group()
    gc.collect()  # whatever still held the group goes now, while the interpreter is whole
    # Finalising the interpreter on the way out, the C++ threads of a communication library can
    # abort the process ("terminate called without an active exception": pytorch/pytorch#109478,
    # #190489); it happened once in ~50 two-process runs here (2026-11-30, in CI). The work is
    # done, the outputs closed and the group destroyed: leave as a forked child does.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(result if isinstance(result, int) and not isinstance(result, bool) else 0)
