"""A Kafka protocol shim that lets librdkafka 2.0 clients (kcat on Debian 12) talk to Tansu.

Why: kcat sends ApiVersions v3. Tansu 0.6 answers it correctly but ends the response with
four tagged fields carrying their default values (SupportedFeatures, FinalizedFeaturesEpoch,
FinalizedFeatures, ZkMigrationReady); a Kafka broker omits default-valued tagged fields and
sends a tag count of 0. librdkafka 2.0.2's ``rd_kafka_buf_skip_tags`` skips ``size - 1``
bytes of each tagged field instead of ``size`` (fixed in later librdkafka), so it fails with
"Protocol read buffer underflow for ApiVersion v3 ... Read underflow" and never gets further.
``api.version.request=false`` is ignored for ``broker.version.fallback`` >= 0.10, and an
older fallback breaks later requests, so no client setting helps.

What: every accepted TCP connection gets its own connection to the upstream broker and bytes
are forwarded both ways as length-prefixed Kafka frames. Client→broker, the correlation id
and version of each ApiVersions request are noted. Broker→client, the answer to an
ApiVersions request of version >= 3 is parsed (error code, the compact array of api keys,
throttle time) and re-encoded with no tagged fields, with the frame size fixed. Every other
frame passes through byte for byte. The broker must advertise the shim's port, or clients
reconnect to it directly after reading Metadata.

Run: ``python -m tests.integration.kafka_shim --listen PORT --upstream HOST:PORT`` (port 0:
any free port). The shim prints one line ``kafka-shim listening on HOST:PORT`` on stdout when
it accepts connections, logs to stderr, and exits on SIGTERM/SIGINT or when its parent dies.
:func:`start_shim` runs it as a child process on an already listening socket (no port race).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

API_VERSIONS = 18  # Kafka api key of ApiVersions
FIRST_FLEXIBLE_API_VERSIONS = 3  # first ApiVersions version with tagged fields
READY_PREFIX = "kafka-shim listening on "


# --------------------------------------------------------------------------- protocol


def _uvarint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned varint at ``pos``; return (value, position after it)."""
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _skip_tagged_fields(buf: bytes, pos: int) -> tuple[int, int]:
    """Skip a tagged-field section at ``pos``; return (field count, position after it)."""
    count, pos = _uvarint(buf, pos)
    for _ in range(count):
        _tag, pos = _uvarint(buf, pos)
        size, pos = _uvarint(buf, pos)
        pos += size
    return count, pos


def strip_api_versions_tags(body: bytes) -> tuple[bytes, int]:
    """Re-encode an ApiVersions v3+ response body without tagged fields.

    ``body`` follows the correlation id (ApiVersions responses always use header v0):
    error_code int16, api_keys compact array of (api_key int16, min int16, max int16,
    tagged fields), throttle_time_ms int32, tagged fields. Returns the new body and the
    number of tagged fields dropped. :class:`ValueError` when the body does not parse.
    """
    try:
        pos = 2  # error_code
        n_plus_one, pos = _uvarint(body, pos)
        out = [body[:pos]]  # error code and array length are kept as they are
        dropped = 0
        for _ in range(max(n_plus_one - 1, 0)):  # 0 encodes a null array
            entry = body[pos : pos + 6]  # api_key, min_version, max_version
            if len(entry) != 6:
                raise ValueError("truncated api_keys entry")
            count, pos = _skip_tagged_fields(body, pos + 6)
            dropped += count
            out.append(entry + b"\x00")
        throttle = body[pos : pos + 4]
        if len(throttle) != 4:
            raise ValueError("truncated throttle_time_ms")
        count, end = _skip_tagged_fields(body, pos + 4)
    except IndexError as exc:
        raise ValueError("truncated ApiVersions response") from exc
    if end != len(body):
        raise ValueError(f"{len(body) - end} trailing bytes after the ApiVersions response")
    out.append(throttle + b"\x00")
    return b"".join(out), dropped + count


# --------------------------------------------------------------------------- forwarding


def _log(message: str) -> None:
    print(f"kafka-shim: {message}", file=sys.stderr, flush=True)


async def _read_frame(reader: asyncio.StreamReader) -> bytes | None:
    """One Kafka frame without its size prefix; None at end of stream."""
    try:
        (size,) = struct.unpack(">i", await reader.readexactly(4))
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None


async def _requests(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, pending: dict[int, int]
) -> None:
    """Client → broker: note ApiVersions requests, forward every frame unchanged.

    Only ApiVersions is noted: Produce with acks=0 gets no answer, so a map of every
    request would grow for ever.
    """
    while (frame := await _read_frame(src)) is not None:
        api_key, api_version, correlation_id = struct.unpack_from(">hhi", frame)
        if api_key == API_VERSIONS:
            pending[correlation_id] = api_version
        dst.write(struct.pack(">i", len(frame)) + frame)
        await dst.drain()


async def _responses(
    src: asyncio.StreamReader, dst: asyncio.StreamWriter, pending: dict[int, int]
) -> None:
    """Broker → client: strip the tagged fields of ApiVersions v3+ answers, forward all."""
    while (frame := await _read_frame(src)) is not None:
        (correlation_id,) = struct.unpack_from(">i", frame)
        version = pending.pop(correlation_id, None)
        if version is not None and version >= FIRST_FLEXIBLE_API_VERSIONS:
            (error_code,) = struct.unpack_from(">h", frame, 4)
            # An error answer (e.g. UNSUPPORTED_VERSION) is in the v0 layout: leave it.
            if error_code == 0:
                try:
                    body, dropped = strip_api_versions_tags(frame[4:])
                except ValueError as exc:
                    _log(f"ApiVersions v{version} answer left as is: {exc}")
                else:
                    frame = frame[:4] + body
                    _log(f"ApiVersions v{version} answer: dropped {dropped} tagged field(s)")
        dst.write(struct.pack(">i", len(frame)) + frame)
        await dst.drain()


async def _serve_client(
    client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, upstream: tuple[str, int]
) -> None:
    try:
        broker_r, broker_w = await asyncio.open_connection(*upstream)
    except OSError as exc:
        _log(f"upstream {upstream[0]}:{upstream[1]} unreachable: {exc}")
        client_w.close()
        return
    pending: dict[int, int] = {}
    pumps = [
        asyncio.create_task(_requests(client_r, broker_w, pending)),
        asyncio.create_task(_responses(broker_r, client_w, pending)),
    ]
    try:
        # Either side closing (or failing) ends the pair.
        done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = None if task.cancelled() else task.exception()
            if error is not None and not isinstance(error, ConnectionError):
                _log(f"connection closed on error: {error!r}")
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for writer in (client_w, broker_w):
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def serve(listener: socket.socket, upstream: tuple[str, int]) -> None:
    """Accept on ``listener`` until SIGTERM/SIGINT or the parent process dies."""
    server = await asyncio.start_server(lambda r, w: _serve_client(r, w, upstream), sock=listener)
    parent = os.getppid()  # before the ready line, which the launcher waits for
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host, port = listener.getsockname()[:2]
    print(f"{READY_PREFIX}{host}:{port}", flush=True)
    try:
        while not stop.is_set() and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        # No wait_closed(): open connections end with the loop, not before it.
        server.close()


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="kafka_shim", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", type=int, help="port to listen on (0: any free port)")
    where.add_argument("--listen-fd", type=int, help="inherited listening socket")
    parser.add_argument("--host", default="127.0.0.1", help="address for --listen")
    parser.add_argument("--upstream", type=_host_port, required=True, help="broker HOST:PORT")
    args = parser.parse_args(argv)
    if args.listen_fd is not None:
        listener = socket.socket(fileno=args.listen_fd)
    else:
        listener = socket.create_server((args.host, args.listen))
    asyncio.run(serve(listener, args.upstream))


# --------------------------------------------------------------------------- launcher


class ShimProcess:
    """The shim running as a child process; stopped by its pid."""

    def __init__(self, proc: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
        self.proc = proc
        self.host = host
        self.port = port
        self.log = log

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to self.proc.pid
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_shim(
    listener: socket.socket, upstream: str, log: Path, timeout: float = 15.0
) -> ShimProcess:
    """Run the shim on ``listener`` (bound and listening) in front of ``upstream``.

    The child inherits the socket, so the port the broker advertises is held from the
    start; the caller may close its copy afterwards.
    """
    fd = listener.fileno()
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            # run as a script (stdlib only): no import of a `tests` package needed
            [sys.executable, __file__, "--listen-fd", str(fd), "--upstream", upstream],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            pass_fds=[fd],
        )
    host, port = listener.getsockname()[:2]
    shim = ShimProcess(proc, host, port, log)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if not select.select([proc.stdout], [], [], 0.1)[0]:
            continue
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break  # the shim exited
        line += chunk
    if not line.decode(errors="replace").startswith(READY_PREFIX):
        shim.stop()
        raise RuntimeError(f"kafka shim did not start (said {line!r}); log:\n{shim.tail()}")
    return shim


if __name__ == "__main__":
    main()
