#!/usr/bin/python3
"""Connects and messages per second through plain TCP and TLS, with a user name and password, as paho users run them.

One broker per invocation; bench/security.sh runs it against this broker and mosquitto alternately and prints medians
and ratios. Uses Debian's python3-paho-mqtt (1.6), MQTT 3.1.1.

  bench/security.py --port 1883 --tls-port 8883 --cafile ca.pem --user bench --password pw --connects 500 --messages 20000
Prints one JSON object: connects_per_s and qos1_msgs_per_s for "plain" and "tls".
"""
import argparse
import json
import ssl
import threading
import time

import paho.mqtt.client as mqtt


def client(args, client_id, tls):
    c = mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)
    c.username_pw_set(args.user, args.password)
    if tls:
        c.tls_set(ca_certs=args.cafile, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    return c


def connects(args, port, tls):
    """Sequential connect (CONNACK accepted) and disconnect, one client after another."""
    start = time.perf_counter()
    for i in range(args.connects):
        c = client(args, f"conn-{i}", tls)
        done = threading.Event()
        result = {}

        def on_connect(_c, _u, _f, rc, result=result, done=done):
            result["rc"] = rc
            done.set()

        c.on_connect = on_connect
        c.connect(args.host, port, keepalive=60)
        c.loop_start()
        if not done.wait(10) or result.get("rc") != 0:
            raise SystemExit(f"connect {i} on port {port} failed: {result}")
        c.disconnect()
        c.loop_stop()
    return args.connects / (time.perf_counter() - start)


def messages(args, port, tls):
    """One publisher, QoS 1 with paho's default window (20 in flight), to one QoS 1 subscriber; until every message arrived."""
    topic = f"bench/security/{time.time_ns()}"
    received = threading.Event()
    count = [0]
    sub = client(args, "sec-sub", tls)
    subscribed = threading.Event()

    def on_message(_c, _u, _m):
        count[0] += 1
        if count[0] == args.messages:
            received.set()

    sub.on_message = on_message
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(args.host, port)
    sub.loop_start()
    sub.subscribe(topic, qos=1)
    if not subscribed.wait(10):
        raise SystemExit("subscribe failed")
    pub = client(args, "sec-pub", tls)
    pub.max_inflight_messages_set(20)
    pub.max_queued_messages_set(0)
    pub.connect(args.host, port)
    pub.loop_start()
    payload = b"x" * 64
    start = time.perf_counter()
    for _ in range(args.messages):
        pub.publish(topic, payload, qos=1)
    if not received.wait(args.timeout):
        raise SystemExit(f"only {count[0]} of {args.messages} messages arrived in {args.timeout} s")
    rate = args.messages / (time.perf_counter() - start)
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return rate


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls-port", type=int, required=True)
    p.add_argument("--cafile", required=True)
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--connects", type=int, default=500)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--timeout", type=float, default=120)
    args = p.parse_args()
    out = {}
    for name, port, tls in (("plain", args.port, False), ("tls", args.tls_port, True)):
        out[name] = {"connects_per_s": round(connects(args, port, tls), 1), "qos1_msgs_per_s": round(messages(args, port, tls), 1)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
