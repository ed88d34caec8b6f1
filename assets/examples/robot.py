#!/usr/bin/env python3
"""An example robot for Omnicast's bridge (Python 3, standard library only).

Listens on a local TCP port for the broadcaster (`omnicast broadcast --bridge tcp://127.0.0.1:9000`),
prints every line it gets (viewers' messages, and viewport samples with --bridge-viewport), and
sends telemetry to every viewer once a second: one JSON object a line both ways.

    python3 assets/examples/robot.py [--port 9000] [--interval 1.0]

A real robot replaces `on_message` with its own control code and `telemetry` with its sensors.
"""

import argparse
import json
import socket
import sys
import threading
import time

STARTED = time.monotonic()


def telemetry(state):
    """What the robot tells viewers: replace with real sensors."""
    return {
        "uptime_s": round(time.monotonic() - STARTED, 1),
        "battery": round(max(0.0, 1.0 - (time.monotonic() - STARTED) / 36000), 3),
        "messages": state["messages"],
        "last_message": state["last_message"],
    }


def on_message(state, line):
    """A line from the broadcaster: a viewer's message (or viewport sample)."""
    try:
        msg = json.loads(line)
    except ValueError:
        print(f"not JSON, ignored: {line[:200]!r}", flush=True)
        return
    if msg.get("type") == "message":
        state["messages"] += 1
        state["last_message"] = msg.get("data")
        print(f"message from viewer {msg.get('viewer')}: {json.dumps(msg.get('data'))}", flush=True)
    elif msg.get("type") == "viewport":
        print(f"viewport of {msg.get('viewer')}: yaw {msg.get('yaw')} pitch {msg.get('pitch')}", flush=True)


def serve_broadcaster(conn, state, interval):
    stop = threading.Event()

    def send_telemetry():
        while not stop.wait(interval):
            line = json.dumps({"type": "telemetry", "data": telemetry(state)}) + "\n"
            try:
                conn.sendall(line.encode())
            except OSError:
                return

    sender = threading.Thread(target=send_telemetry, name="robot-telemetry", daemon=True)
    sender.start()
    with conn, conn.makefile("r", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if line.strip():
                on_message(state, line.strip())
    stop.set()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between telemetry lines")
    args = parser.parse_args()
    state = {"messages": 0, "last_message": None}
    with socket.create_server((args.host, args.port)) as server:
        print(f"robot listening on {args.host}:{server.getsockname()[1]}", flush=True)
        while True:
            conn, peer = server.accept()
            print(f"broadcaster connected from {peer[0]}:{peer[1]}", flush=True)
            serve_broadcaster(conn, state, args.interval)
            print("broadcaster went away", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
