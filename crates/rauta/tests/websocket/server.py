"""A WebSocket echo backend (Python `websockets`) for tests/websocket.rs.

Usage: server.py [CERT KEY]. Serves on 127.0.0.1, port 0; with a certificate and key it speaks TLS (wss)
and prints "sni NAME" for each handshake ("sni None" when the client sent no SNI). Echoes every message.
Prints "port N" once serving; exits on stdin EOF.
"""
import asyncio
import ssl
import sys

from websockets.asyncio.server import serve


async def echo(ws):
    async for message in ws:
        await ws.send(message)


async def main():
    context = None
    if len(sys.argv) == 3:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[1], sys.argv[2])
        context.sni_callback = lambda _sock, name, _ctx: print("sni", name, flush=True)
    async with serve(echo, "127.0.0.1", 0, ssl=context, max_size=None) as server:
        print("port", server.sockets[0].getsockname()[1], flush=True)
        # Serve until the test closes stdin (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


asyncio.run(main())
