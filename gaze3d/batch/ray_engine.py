"""The Ray engine: the batch's items in Ray actors, each holding one :class:`ItemRunner`.

An actor loads the model once (on its first segmentation item) and keeps
the last scan, like a local worker process; items go to whichever actor is
idle (one in flight per actor), so slow items do not hold up the others. The
actors write their outputs themselves, so ``OUTDIR`` must be a path every
node sees (shared storage); see ``docs/scale.md``.

Ray is optional (``pip install 'gaze3d[ray]'``) and imported only here.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from .._optional import optional_import
from ..errors import Gaze3DError
from .item import ItemRunner
from .manifest import BatchItem


class ItemActor:
    """A Ray actor body: one :class:`ItemRunner` for the actor's life."""

    def __init__(self, runner_kwargs: dict):
        from .provenance import environ_threads

        environ_threads(runner_kwargs.get("threads", 1))
        self.runner = ItemRunner(**runner_kwargs)

    def run(self, item_dict: dict) -> dict:
        return self.runner.run(BatchItem.from_dict(item_dict))


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast on ``HOST:PORT`` that nothing answers (``ray.init`` would retry for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if address == "auto" or "://" in address or not sep or not port.isdigit():
        return                               # "auto", ray://... : left to Ray
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise Gaze3DError(f"--address {address}: cannot join the Ray cluster (nothing answers: {exc}); "
                          "start it with `ray start --head` (see docs/scale.md)") from None


def run_ray(items: Sequence[BatchItem], runner_kwargs: dict, workers: int, on_result: Callable, *,
            address: Optional[str] = None, gpus_per_worker: float = 0.0) -> None:
    """Run ``items`` on ``workers`` Ray actors; ``on_result(item, result)`` as each finishes.

    Parameters
    ----------
    address : str, optional
        Join this cluster (``HOST:PORT`` of a head, or ``auto``); default: a
        Ray started here with ``workers`` CPUs, shut down at the end.
    gpus_per_worker : float
        GPUs each actor reserves (fractions share a GPU).

    An actor that dies (node lost, out of memory) fails the item it was
    running, with that reason, and is replaced.
    """
    ray = optional_import("ray", extra="ray")
    from ray.exceptions import RayActorError, RayError

    from .engine import _failed

    ours = False
    if not ray.is_initialized():
        kw = dict(logging_level="ERROR", log_to_driver=False, configure_logging=False)
        if address:
            _check_reachable(address)
        try:
            if address:
                ray.init(address=address, **kw)
            else:
                ray.init(num_cpus=workers, num_gpus=None, include_dashboard=False, **kw)
        except (ConnectionError, RayError, RuntimeError, ValueError) as exc:
            where = f"--address {address}: cannot join the Ray cluster" if address else "cannot start Ray here"
            reason = " ".join(str(exc).split())
            raise Gaze3DError(f"{where} ({type(exc).__name__}: {reason[:300]}); see docs/scale.md") from exc
        ours = True
    remote = ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(ItemActor)
    actors = []
    try:
        actors = [remote.remote(runner_kwargs) for _ in range(workers)]
        todo = list(items)[::-1]
        idle = list(range(workers))
        running = {}
        while todo or running:
            while todo and idle:
                k = idle.pop()
                it = todo.pop()
                running[actors[k].run.remote(it.to_dict())] = (k, it)
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                k, it = running.pop(ref)
                try:
                    on_result(it, ray.get(ref))
                except RayActorError as exc:
                    on_result(it, _failed(it, f"Ray actor died while running this item "
                                              f"({type(exc).__name__}); rerun with --resume"))
                    actors[k] = remote.remote(runner_kwargs)
                except RayError as exc:
                    on_result(it, _failed(it, f"Ray error: {' '.join(str(exc).split())[:300]}"))
                idle.append(k)
    finally:
        for a in actors:
            try:
                ray.kill(a)
            except Exception:  # already dead: nothing to release
                pass
        if ours:
            ray.shutdown()
