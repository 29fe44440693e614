"""A gRPC test backend (grpcio, cleartext HTTP/2 with prior knowledge) for tests/grpc.rs.

Methods of service `test.Echo`, with raw bytes as messages (no protobuf, no code generation):
  Echo   unary: answers the request, with trailing metadata `x-trailer: kept`
  Count  server streaming: the request is a decimal n, answers n messages b"0", b"1", ...
  Sum    client streaming: answers the number of messages and bytes received, as "messages/bytes"
  Chat   bidi: answers each message upper-cased, as it arrives
  Slow   unary: sleeps 10 s, then answers
  Fail   unary: fails with NOT_FOUND and the message "no such thing"

Prints "port N" once serving on 127.0.0.1 (port 0 unless given as the first argument); exits on stdin EOF.
"""
import sys
import time
from concurrent import futures

import grpc


def echo(request, context):
    context.set_trailing_metadata((("x-trailer", "kept"),))
    return request


def count(request, context):
    for i in range(int(request.decode())):
        yield str(i).encode()


def total(request_iterator, context):
    messages = 0
    size = 0
    for message in request_iterator:
        messages += 1
        size += len(message)
    return f"{messages}/{size}".encode()


def chat(request_iterator, context):
    for message in request_iterator:
        yield message.upper()


def slow(request, context):
    time.sleep(10)
    return request


def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")


HANDLERS = {
    "Echo": grpc.unary_unary_rpc_method_handler(echo),
    "Count": grpc.unary_stream_rpc_method_handler(count),
    "Sum": grpc.stream_unary_rpc_method_handler(total),
    "Chat": grpc.stream_stream_rpc_method_handler(chat),
    "Slow": grpc.unary_unary_rpc_method_handler(slow),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
}


def main():
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        options=[
            ("grpc.max_receive_message_length", 8 << 20),
            ("grpc.max_send_message_length", 8 << 20),
        ],
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", HANDLERS),))
    port = server.add_insecure_port("127.0.0.1:%s" % (sys.argv[1] if len(sys.argv) > 1 else "0"))
    server.start()
    print("port", port, flush=True)
    sys.stdin.read()
    server.stop(0)


if __name__ == "__main__":
    main()
