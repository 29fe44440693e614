"""A long-lived WebSocket client (Python `websockets`) for tests/websocket.rs.

Usage: client.py URI ADDR [CA_FILE]. Opens one WebSocket to URI (its host goes into SNI and Host), the TCP
connection going to ADDR (host:port); with CA_FILE the server certificate must verify against it. Then, for
each line read on stdin, sends the line as a message and prints "echo <message>" once the same message came
back (or "error <why>" and exits 1). Prints "open" once connected; closes cleanly on stdin EOF.
"""
import asyncio
import ssl
import sys

from websockets.asyncio.client import connect


async def main(uri, addr, cafile):
    host, port = addr.rsplit(":", 1)
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    loop = asyncio.get_running_loop()
    try:
        async with connect(uri, host=host, port=int(port), ssl=context, max_size=None) as ws:
            print("open", flush=True)
            while True:
                line = await loop.run_in_executor(None, sys.stdin.readline)
                if not line:
                    return
                message = line.rstrip("\n")
                await ws.send(message)
                answer = await asyncio.wait_for(ws.recv(), 10)
                if answer != message:
                    print("error echoed", repr(answer), flush=True)
                    sys.exit(1)
                print("echo", message, flush=True)
    except Exception as err:  # the test reads the reason from stdout
        print("error", type(err).__name__, err, flush=True)
        sys.exit(1)


asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
