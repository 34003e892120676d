#!/usr/bin/env python3
"""One raw MQTT 3.1.1 client floods 1 KiB QoS 0 messages into a subscriber that never reads.

Prints how many messages the node took in the given time. With --session-on NODE, subscriber client IDs are tried
until the admin API names NODE as the one hosting the subscriber's session, so the flood crosses between nodes.

  python3 bench/qos0-flood.py --port 1883 --admin http://127.0.0.1:8082 --seconds 5 [--session-on node-2]
"""
import argparse
import json
import random
import socket
import struct
import time
import urllib.request


def remaining_length(n):
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def utf8(text):
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def packet(first_byte, body):
    return bytes([first_byte]) + remaining_length(len(body)) + body


def connect(client_id):
    return packet(0x10, utf8("MQTT") + bytes([4, 2]) + struct.pack(">H", 60) + utf8(client_id))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--admin", default="http://127.0.0.1:8082")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--session-on", default=None)
    args = parser.parse_args()

    for _ in range(100):
        client_id = "flood-sub-%d" % random.randrange(1 << 30)
        subscriber = socket.socket()
        subscriber.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        subscriber.connect(("127.0.0.1", args.port))
        subscriber.sendall(connect(client_id))
        subscriber.recv(4)
        if args.session_on is None:
            break
        with urllib.request.urlopen("%s/api/v1/sessions/%s" % (args.admin, client_id)) as answer:
            if json.load(answer).get("node") == args.session_on:
                break
        subscriber.close()
    else:
        raise SystemExit("no session landed on " + args.session_on)

    topic = "flood/" + client_id
    subscriber.sendall(packet(0x82, struct.pack(">H", 1) + utf8(topic) + bytes([0])))
    subscriber.recv(5)
    publisher = socket.socket()
    publisher.connect(("127.0.0.1", args.port))
    publisher.sendall(connect(client_id + "-pub"))
    publisher.recv(4)
    chunk = packet(0x30, utf8(topic) + b"x" * 1024) * 64
    sent = 0
    start = time.monotonic()
    while time.monotonic() - start < args.seconds:
        publisher.sendall(chunk)
        sent += 64
    elapsed = time.monotonic() - start
    print("qos0-flood: sent=%d seconds=%.1f rate=%d/s" % (sent, elapsed, sent / elapsed))
    publisher.close()
    subscriber.close()


if __name__ == "__main__":
    main()
