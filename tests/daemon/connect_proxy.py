#!/usr/bin/python3
"""A minimal HTTP CONNECT proxy for the gRPC client tests: tunnels to 127.0.0.1/localhost only
and appends each CONNECT target to the --log file. Prints "READY unix= tcp=127.0.0.1:<port>"."""
import argparse
import asyncio
import signal


async def pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


def handler(log_path):
    async def handle(reader, writer):
        request = await reader.readuntil(b"\r\n\r\n")
        method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ", 2)
        host, port = target.rsplit(":", 1)
        with open(log_path, "a") as log:
            log.write(f"{method} {target}\n")
        if method != "CONNECT" or host not in ("127.0.0.1", "localhost"):
            writer.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
    return handle


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--log", required=True)
    args = p.parse_args()
    server = await asyncio.start_server(handler(args.log), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"READY unix= tcp=127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


asyncio.run(main())
