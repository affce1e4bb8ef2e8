"""A TCP proxy on 127.0.0.1 that adds latency, not a bandwidth limit: every chunk from
the client is forwarded to the server ``delay`` after it arrived, in order. A reader
keeps reading while earlier chunks wait for their time, so a stream still flows at full
speed, only later. Replies from the server are not delayed: one request and its reply
take ``delay`` longer, as with a store that far away (one way).

    python -m objbench.latency UPSTREAM_HOST:PORT DELAY_MS

prints the port it listens on, then serves until SIGTERM. ``latency_proxy`` runs it
as a child process and stops it by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CHUNK = 256 * 1024
QUEUED_CHUNKS = 256  # at most 64 MiB in flight per connection, then the reader waits
HERE = Path(__file__).resolve().parent


async def delayed_copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       delay: float) -> None:
    """Copy reader to writer, each chunk due ``delay`` after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUED_CHUNKS)

    async def feed() -> None:
        try:
            while data := await reader.read(CHUNK):
                await queue.put((loop.time() + delay, data))
        finally:
            await queue.put((0.0, b""))

    async def forward() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    await asyncio.gather(feed(), forward())


async def copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()


async def serve_connection(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter,
                           host: str, port: int, delay: float) -> None:
    try:
        server_r, server_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    up = asyncio.ensure_future(delayed_copy(client_r, server_w, delay))
    try:
        # The connection ends when the server closes it (or the client does: the EOF
        # reaches the server after the delay, and it closes).
        await copy(server_r, client_w)
    except (ConnectionError, OSError):
        pass
    finally:
        up.cancel()
        for writer in (client_w, server_w):
            writer.close()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await up


async def main_async(upstream: str, delay_ms: float) -> None:
    host, port = upstream.rsplit(":", 1)
    delay = delay_ms / 1000

    connections: set[asyncio.Task[None]] = set()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await serve_connection(r, w, host, int(port), delay)
        except asyncio.CancelledError:
            pass  # stopping: end quietly (asyncio reports a cancelled handler as an error)
        finally:
            connections.discard(task)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, limit=CHUNK)
    print(server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


def main(argv: list[str]) -> int:
    asyncio.run(main_async(argv[1], float(argv[2])))
    return 0


@contextmanager
def latency_proxy(endpoint: str, delay_ms: float) -> Iterator[tuple[str, int]]:
    """Run the proxy for ``endpoint`` (http://127.0.0.1:PORT); yields its URL and PID."""
    upstream = endpoint.split("://", 1)[1].rstrip("/")
    proc = subprocess.Popen([sys.executable, "-m", "objbench.latency", upstream,
                             str(delay_ms)], cwd=HERE.parent, stdout=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        if not port.isdigit():
            raise RuntimeError(f"latency proxy did not start (exit status {proc.poll()})")
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
