"""Choosing the compute device: ``auto`` means CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

from .errors import DeviceError


def resolve_device(name: str = "auto"):
    """A ``torch.device`` for ``name``; asking for an absent device is a :class:`DeviceError`."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name!r} was requested but CUDA is not available on this machine "
                              "(use device='auto' or 'cpu')")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r} was requested but only {torch.cuda.device_count()} GPU(s) exist")
        return dev
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise DeviceError("device 'mps' was requested but Apple MPS is not available")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceError(f"unknown device {name!r}: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


THREADS_ENV = "VAE_ANOMALY_THREADS"


def thread_count(n_jobs: int | None = None) -> int:
    """Torch intra-op threads for this process.

    ``n_jobs`` given: that many (-1: every core this process may use). Otherwise ``VAE_ANOMALY_THREADS``,
    else half the usable cores (at least one). Torch's own default takes every core, and two
    processes that each do so spin against each other: a 1-epoch fit measured 60 s instead of 6.6 s
    with one thread while another job ran. Half leaves room for the other job or for data loading.
    """
    import os

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    if n_jobs is None:
        env = os.environ.get(THREADS_ENV)
        if env:
            try:
                n_jobs = int(env)
            except ValueError as exc:
                from .errors import ConfigError

                raise ConfigError(f"{THREADS_ENV}={env!r} is not an integer") from exc
        else:
            return max(1, cores // 2)
    if n_jobs == -1:
        return cores
    if n_jobs < 1:
        from .errors import ConfigError

        raise ConfigError(f"threads must be a positive integer or -1 (every core), got {n_jobs}")
    return int(n_jobs)


class torch_threads:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Run a block with a set number of torch threads, restoring the previous count after."""

    def __init__(self, n_jobs: int | None = None) -> None:
        self.n = thread_count(n_jobs)

    def __enter__(self) -> int:
        import torch

        self.before = torch.get_num_threads()
        if self.n != self.before:
            torch.set_num_threads(self.n)
        return self.n

    def __exit__(self, *exc: object) -> None:
        import torch

        if torch.get_num_threads() != self.before:
            torch.set_num_threads(self.before)
