#!/usr/bin/env python3
"""Records the bytes of a real PyTorch TCPStore exchange, for cornet-rs's protocol tests.

A PyTorch client talks to a PyTorch server through a recording proxy; each operation is
written with its arguments, its result and its exchanges (what the client sent, then what the
server answered: a GET is a WAIT answered, then a GET answered) to
tests/interop/tcpstore_exchange.json. The Rust tests replay the recording against our client
(as the server) and against our server (as the client), byte for byte.

    python tools/interop/record_tcpstore.py [OUT.json]      # needs torch (pip install torch)
"""

import datetime
import json
import pathlib
import socket
import sys
import threading
import time

import torch
from torch.distributed import TCPStore

# Long enough for each operation's bytes to cross the proxy before the next one starts.
SETTLE = 0.2


class Proxy:
    """Forwards one TCP connection to the server, keeping what crosses, in order."""

    def __init__(self, server_port):
        self.server_port = server_port
        self.chunks = []  # (direction, bytes), "sent" from the client, "received" from the server
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        client, _ = self.listener.accept()
        server = socket.create_connection(("127.0.0.1", self.server_port))
        threading.Thread(target=self._pipe, args=(client, server, "sent"), daemon=True).start()
        threading.Thread(target=self._pipe, args=(server, client, "received"), daemon=True).start()

    def _pipe(self, src, dst, direction):
        while chunk := src.recv(65536):
            # Logged before it is passed on: an answer is in the log before the request it
            # lets the client send.
            with self.lock:
                self.chunks.append((direction, chunk))
            dst.sendall(chunk)

    def take(self):
        """The exchanges since the last call: what the client sent, then what the server
        answered before the client sent more."""
        time.sleep(SETTLE)
        with self.lock:
            chunks, self.chunks = self.chunks, []
        exchanges = []
        for direction, chunk in chunks:
            if direction == "sent" and (not exchanges or exchanges[-1]["received"]):
                exchanges.append({"sent": "", "received": ""})
            exchanges[-1][direction] += chunk.hex()
        return exchanges


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def main(out):
    server = TCPStore("127.0.0.1", 0, None, True, wait_for_workers=False)
    proxy = Proxy(server.port)
    client = TCPStore("127.0.0.1", proxy.port, None, False, timeout=datetime.timedelta(seconds=10))
    steps = []

    def step(op, args, result):
        steps.append({"op": op, "args": args, "result": result, "exchanges": proxy.take()})

    step("connect", [], None)
    client.set("k", "v1")
    step("set", ["k", "v1"], None)
    step("get", ["k"], text(client.get("k")))
    step("add", ["n", 3], client.add("n", 3))
    step("add", ["n", -1], client.add("n", -1))
    step("check", [["k", "zz"]], client.check(["k", "zz"]))
    step("check", [["k", "n"]], client.check(["k", "n"]))
    step("compare_set", ["k", "v1", "v2"], text(client.compare_set("k", "v1", "v2")))
    step("compare_set", ["k", "v1", "v3"], text(client.compare_set("k", "v1", "v3")))
    step("compare_set", ["fresh", "", "x"], text(client.compare_set("fresh", "", "x")))
    step("compare_set", ["absent", "e", "y"], text(client.compare_set("absent", "e", "y")))
    step("multi_get", [["k", "n"]], [text(v) for v in client.multi_get(["k", "n"])])
    client.multi_set(["a", "b"], ["1", "2"])
    step("multi_set", [["a", "b"], ["1", "2"]], None)
    step("num_keys", [], client.num_keys())
    step("delete_key", ["a"], client.delete_key("a"))
    step("delete_key", ["a"], client.delete_key("a"))
    client.append("b", "xyz")
    step("append", ["b", "xyz"], None)
    step("get", ["b"], text(client.get("b")))
    client.wait(["b", "k"])
    step("wait", [["b", "k"]], True)
    client.set_timeout(datetime.timedelta(milliseconds=500))
    try:
        client.get("never")
        result = "value"
    except Exception:  # torch.distributed.DistStoreError: the wait timed out
        result = None
    step("get_timeout", ["never", 500], result)

    recording = {
        "recorded_with": f"torch {torch.__version__}",
        "note": "Written by tools/interop/record_tcpstore.py; hex bytes, sent = client to server.",
        "steps": steps,
    }
    pathlib.Path(out).write_text(json.dumps(recording, indent=1) + "\n")
    print(f"wrote {len(steps)} steps to {out}")


if __name__ == "__main__":
    root = pathlib.Path(__file__).resolve().parents[2]
    main(sys.argv[1] if len(sys.argv) > 1 else root / "tests/interop/tcpstore_exchange.json")
