"""A gRPC test client (grpcio) for tests/grpc.rs: runs one scenario against TARGET (host:port, through
RAUTA) and prints one JSON object with what it observed. Usage: client.py TARGET SCENARIO."""
import json
import sys
import time

import grpc

IDENTITY = dict(request_serializer=None, response_deserializer=None)


def method(channel, kind, name, service="test.Echo"):
    return getattr(channel, kind)(f"/{service}/{name}", **IDENTITY)


def status(err):
    return {"code": err.code().name, "details": err.details()}


def calls(channel):
    out = {}
    response, call = method(channel, "unary_unary", "Echo").with_call(b"hello", timeout=10)
    out["unary"] = response.decode()
    out["unary_trailers"] = dict(call.trailing_metadata() or ())
    big = bytes(range(256)) * 4096  # 1 MiB: many DATA frames and flow-control windows each way
    out["unary_big"] = method(channel, "unary_unary", "Echo")(big, timeout=10) == big
    out["server_stream"] = [m.decode() for m in method(channel, "unary_stream", "Count")(b"5", timeout=10)]
    messages = (bytes([i]) * 1000 for i in range(20))
    out["client_stream"] = method(channel, "stream_unary", "Sum")(messages, timeout=10).decode()
    out["bidi"] = [m.decode() for m in method(channel, "stream_stream", "Chat")(iter([b"a", b"b", b"c"]), timeout=10)]
    # Bidi in lock step: each answer must arrive before the next request is sent (nothing buffered whole).
    import queue

    q = queue.Queue()
    requests = iter(q.get, None)
    answers = method(channel, "stream_stream", "Chat")(requests, timeout=10)
    lockstep = []
    for word in ["x", "y", "z"]:
        q.put(word.encode())
        lockstep.append(next(answers).decode())
    q.put(None)
    out["bidi_lockstep"] = lockstep
    try:
        method(channel, "unary_unary", "Fail")(b"", timeout=10)
        out["fail"] = None
    except grpc.RpcError as err:
        out["fail"] = status(err)
    return out


def single(channel, kind, name, service, timeout, payload=b"x"):
    started = time.monotonic()
    try:
        method(channel, kind, name, service)(payload, timeout=timeout)
        result = {"code": "OK"}
    except grpc.RpcError as err:
        result = status(err)
    result["elapsed"] = time.monotonic() - started
    return result


def main():
    target, scenario = sys.argv[1], sys.argv[2]
    # Wait for connection readiness ourselves so a slow start is not mistaken for the proxy failing.
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        if scenario == "calls":
            out = calls(channel)
        elif scenario == "echo":
            out = single(channel, "unary_unary", "Echo", "test.Echo", 5)
        elif scenario == "deadline":
            out = single(channel, "unary_unary", "Slow", "test.Echo", 0.5)
        elif scenario == "unavailable":
            out = single(channel, "unary_unary", "Echo", "dead.Svc", 10)
        elif scenario == "unimplemented":
            out = single(channel, "unary_unary", "Echo", "nowhere.Svc", 10)
        else:
            raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
