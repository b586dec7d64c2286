"""StateFun Python SDK functions that weft calls as their runtime (test/interop/python.test.ts).

Serves apache-flink-statefun 3.3.0's RequestReplyHandler on 127.0.0.1 with the standard library's
HTTP server, prints "listening on <port>" once bound, and logs the size of every answer
("answered <n> bytes") so the test sees the SDK's empty answers to batches without effects.

usage: python functions.py [port]   (0 or none: a free port)
"""
import sys
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from statefun import (IntType, RequestReplyHandler, StatefulFunctions, StringType, ValueSpec,
                      kafka_egress_message, kinesis_egress_message, message_builder)

functions = StatefulFunctions()


@functions.bind(typename="py/counter",
                specs=[ValueSpec(name="count", type=IntType), ValueSpec(name="last", type=StringType)])
def counter(context, message):
    """Counts messages per id, answers the caller "count <n>", and acts on commands:
    delay (a delayed answer), book/cancel (a cancellable delayed answer), kafka/kinesis (egress)."""
    text = message.as_string()
    count = (context.storage.count or 0) + 1
    context.storage.count = count
    context.storage.last = text
    me = context.address.id
    caller = context.caller
    if caller is not None:
        context.send(message_builder(target_typename=caller.typename, target_id=caller.id,
                                     str_value=f"count {count}"))
    if text == "delay" and caller is not None:
        context.send_after(timedelta(milliseconds=200),
                           message_builder(target_typename=caller.typename, target_id=caller.id,
                                           str_value=f"delayed {count}"))
    elif text == "book" and caller is not None:
        context.send_after(timedelta(milliseconds=300),
                           message_builder(target_typename=caller.typename, target_id=caller.id,
                                           str_value="booked"),
                           cancellation_token=f"booking-{me}")
    elif text == "cancel":
        context.cancel_delayed_message(f"booking-{me}")
    elif text == "later" and caller is not None:
        context.send_after(timedelta(milliseconds=1000),
                           message_builder(target_typename=caller.typename, target_id=caller.id,
                                           str_value="later"))
    elif text == "kafka":
        context.send_egress(kafka_egress_message(typename="py/kafka", topic="counts", key=me,
                                                 value=f"count {count}"))
    elif text == "kinesis":
        context.send_egress(kinesis_egress_message(typename="py/kinesis", stream="counts",
                                                   partition_key=me, value=f"count {count}"))


@functions.bind(typename="py/memo",
                specs=[ValueSpec(name="note", type=StringType,
                                 expire_after_write=timedelta(milliseconds=1500))])
def memo(context, message):
    """Keeps a note for 1.5 s after it was written ("set:<note>"); "get" answers the caller with
    the note, or "none" once the runtime (weft) has expired it."""
    text = message.as_string()
    if text.startswith("set:"):
        context.storage.note = text[4:]
    elif context.caller is not None:
        context.send(message_builder(target_typename=context.caller.typename,
                                     target_id=context.caller.id,
                                     str_value=context.storage.note or "none"))


@functions.bind(typename="py/quiet", specs=[ValueSpec(name="seen", type=IntType)])
def quiet(context, message):
    """Reads its state and does nothing: every batch after the first has no effects at all, and
    the SDK answers it with an empty FromFunction body."""
    _ = context.storage.seen


handler = RequestReplyHandler(functions)


class Endpoint(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            answer = handler.handle_sync(body)
        except Exception as e:  # the SDK's own servers answer a failing function with 500
            print(f"function failed: {e!r}", flush=True)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        print(f"answered {len(answer)} bytes", flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Endpoint)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
