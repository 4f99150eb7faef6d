"""Ray for gmv: installed or a clear error, connected (an existing cluster, RAY_ADDRESS or a local
instance), quiet on the console, and user errors raised inside Ray tasks handed back as themselves.

An address is probed with a plain TCP connect first: `ray.init` keeps retrying an address where
nothing listens for minutes, gmv says so in seconds. Ray's own console output (worker logs,
dashboard, Ray Data's banners and non-terminal progress lines) stays out of gmv's console unless
`verbose`; Ray still writes all of it to its session logs (/tmp/ray/session_latest/logs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any, Iterator

from gmv.errors import GmvError

INSTALL_HINT = "pip install 'gmv[distributed]'"
ENGINES = ("local", "ray")


def check_engine(engine: str) -> str:
    if engine not in ENGINES:
        raise GmvError(f"unknown valuation engine {engine!r}; choose one of {', '.join(ENGINES)}")
    return engine


def require_ray():
    """The `ray` module, or a clear error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - the embedding stage needs Ray Data, not just Ray core
    except ImportError as e:
        raise GmvError(f"engine=ray needs Ray with Ray Data, which is not installed ({e}); "
                       f"install it with: {INSTALL_HINT}") from None
    return ray


# ---------------------------------------------------------------- connecting -------------------------


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of an address gmv can probe; None for Ray's own keywords ("auto", "local")."""
    if address in ("auto", "local"):
        return None
    bare = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = bare.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise GmvError(f"Ray address {address!r} is not host:port (e.g. 10.0.0.5:6379, ray://head:10001 or auto)")
    return host, int(port)


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds when nothing listens at `address` (ray.init itself would retry for minutes)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as e:
        raise GmvError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}); start one with "
                       "`ray start --head` on the head node, or fix --ray-address / ray.address / RAY_ADDRESS "
                       "(unset it to run on a local Ray instance)") from None


def quiet_ray_data(verbose: bool = False) -> None:
    """Ray Data's per-run banners and its non-terminal progress log lines stay in its log file."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.print_on_execution_start = verbose
    ctx.enable_progress_bars = verbose  # gmv shows its own bar over the embedded images
    if verbose:
        return
    logger = logging.getLogger("ray.data")
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler) and type(handler).__name__ != "SessionFileHandler":
            handler.setLevel(logging.WARNING)
            if not any(isinstance(f, _DropProgressNotice) for f in handler.filters):
                handler.addFilter(_DropProgressNotice())


class _DropProgressNotice(logging.Filter):
    """Ray Data warns that its progress bars are off; gmv turned them off for its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Progress bars disabled" not in record.getMessage()


@contextlib.contextmanager
def ray_session(address: str | None = None, verbose: bool = False) -> Iterator[Any]:
    """Ray, connected: the running connection if there is one, else `address` (or RAY_ADDRESS), else a
    new local instance on this machine's CPUs/GPUs — shut down again afterwards."""
    ray = require_ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_reachable(address)
    if ray.is_initialized():
        quiet_ray_data(verbose)
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=verbose, configure_logging=True,
                 logging_level=logging.INFO if verbose else logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise GmvError(f"cannot start or join Ray (address {address or 'local'}): {str(e).splitlines()[0]}") from None
    quiet_ray_data(verbose)
    try:
        yield ray
    finally:
        ray.shutdown()


def cluster_slots(ray) -> tuple[int, int]:
    res = ray.cluster_resources()
    return int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))


def user_error(e: BaseException) -> GmvError | None:
    """The GmvError a Ray task or actor raised, if that is what went wrong."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        cause = getattr(e, "cause", None)  # ray.exceptions.RayTaskError keeps the task's own exception here
        if isinstance(cause, GmvError):
            return GmvError(*cause.args)
        if type(e) is GmvError:
            return e
        e = e.__cause__ or cause
    return None
