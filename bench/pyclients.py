#!/usr/bin/python3
"""Throughput with the clients users run, not our C# generator: paho-mqtt (MQTT 3.1.1 and 5), mosquitto_pub and
mosquitto_sub, and pika (AMQP 0.9.1 with a basic.ack per message). Every run of every scenario goes to each broker in
turn (drift on a shared machine hits both alike); the table gives medians and the ratio ours/peer.

Each client runs with its defaults: paho keeps 20 QoS 1 messages in flight, mosquitto_pub reads one message per line
(-l), pika's BlockingChannel waits for each confirm when confirms are on. The subscriber (consumer) runs in a process of
its own; a publisher is paused while more than --backlog messages are undelivered, so the rate is sustained, not
buffered. The rate is messages received divided by the time from the first publish to the last receipt; lost counts
messages not received within --idle-timeout of the last one (QoS 0 may be dropped; acknowledged QoS 1 may not).

Usage (bench/run.sh --python starts the brokers and calls this):
  bench/pyclients.py --mqtt ours=PORT --mqtt mosquitto=PORT --amqp ours=PORT --amqp rabbitmq=PORT
                     [--runs 3] [--messages 20000] [--scenario all|ID,...] [--out results.md]
"""
import argparse
import multiprocessing as mp
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import paho.mqtt.client as mqtt

PAYLOAD = b"x" * 64

SCENARIOS = {
    # id: (protocol, description)
    "paho-qos0": ("mqtt", "paho MQTT 3.1.1 QoS 0 1→1, 64 B"),
    "paho-qos1": ("mqtt", "paho MQTT 3.1.1 QoS 1 1→1, 64 B"),
    "paho5-qos1": ("mqtt", "paho MQTT 5 QoS 1 1→1, 64 B"),
    "mosquitto-clients-qos1": ("mqtt", "mosquitto_pub -l / mosquitto_sub QoS 1 1→1, 64 B"),
    "pika-manualack": ("amqp", "pika transient, basic.ack per message, prefetch 1,000, 1→1, 64 B"),
    "pika-confirms": ("amqp", "pika persistent + confirms, basic.ack per message, 1→1, 64 B"),
}


def paho_client(client_id, v5):
    if v5:
        return mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv5)
    return mqtt.Client(client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311)


def paho_subscriber(port, topic, qos, v5, n, ready, received, done, idle_timeout):
    """Subscribes, counts messages until n arrived or none came for idle_timeout; puts (count, time of the last) in done."""
    client = paho_client("sub-" + uuid.uuid4().hex[:8], v5)
    state = {"count": 0, "last": 0.0}

    def on_connect(c, userdata, flags, rc, properties=None):
        c.subscribe(topic, qos)

    def on_subscribe(c, userdata, mid, granted, properties=None):
        ready.set()

    def on_message(c, userdata, msg):
        state["count"] += 1
        state["last"] = time.monotonic()
        if state["count"] % 500 == 0 or state["count"] == n:
            received.value = state["count"]
        if state["count"] >= n:
            c.disconnect()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    began = time.monotonic()
    # Polls the count: the network thread counts; stops at n or once nothing arrived for idle_timeout.
    while state["count"] < n and time.monotonic() - (state["last"] or began) <= idle_timeout + (0 if state["last"] else 30):
        time.sleep(0.05)
    client.loop_stop()
    done.put((state["count"], state["last"]))


def wait_backlog(sent, received, backlog):
    while sent - received.value > backlog:
        time.sleep(0.001)


def run_paho(port, qos, v5, n, backlog, idle_timeout):
    topic = "bench/py/" + uuid.uuid4().hex[:8]
    ready, done, received = mp.Event(), mp.Queue(), mp.Value("l", 0)
    sub = mp.Process(target=paho_subscriber, args=(port, topic, qos, v5, n, ready, received, done, idle_timeout))
    sub.start()
    try:
        if not ready.wait(20):
            raise RuntimeError("subscriber not subscribed within 20 s")
        pub = paho_client("pub-" + uuid.uuid4().hex[:8], v5)
        acked = {"count": 0}
        pub.on_publish = lambda c, u, mid: acked.__setitem__("count", acked["count"] + 1)
        pub.connect("127.0.0.1", port, keepalive=60)
        pub.loop_start()
        start = time.monotonic()
        for i in range(n):
            if i % 500 == 0:
                wait_backlog(i, received, backlog)
            pub.publish(topic, PAYLOAD, qos)
        count, last = done.get(timeout=600)
        pub.loop_stop()
        pub.disconnect()
        return count, last - start if last else float("inf"), acked["count"] if qos else None
    finally:
        sub.join(30)
        if sub.is_alive():
            sub.kill()


def run_mosquitto_clients(port, n, idle_timeout):
    topic = "bench/mc/" + uuid.uuid4().hex[:8]
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write((b"x" * 63 + b"\n") * n)
        lines = f.name
    try:
        sub = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1", "-C", str(n), "-d"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            # -d prints the SUBACK (line-buffered by stdbuf): from then on the subscription exists.
            deadline = time.monotonic() + 20
            while b"SUBACK" not in sub.stdout.readline():
                if time.monotonic() > deadline or sub.poll() is not None:
                    raise RuntimeError("mosquitto_sub not subscribed")
            start = time.monotonic()
            with open(lines, "rb") as stdin:
                pub = subprocess.Popen(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-q", "1", "-l"],
                                       stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Read the raw pipe with a deadline: a broker that dropped messages leaves mosquitto_sub waiting for them.
            count, last, fd, partial = 0, start, sub.stdout.fileno(), b""
            while count < n:
                ready, _, _ = select.select([fd], [], [], max(0.0, idle_timeout + (0 if count else 30) - (time.monotonic() - last)))
                chunk = os.read(fd, 1 << 16) if ready else b""
                if not chunk:
                    break
                lines_read = (partial + chunk).split(b"\n")
                partial = lines_read.pop()
                got = sum(1 for line in lines_read if line.startswith(b"x"))
                if got:
                    count += got
                    last = time.monotonic()
            pub.wait(idle_timeout + 60)
            # mosquitto_pub does not say how many PUBACKs it got.
            return count, last - start, None
        finally:
            for p in (sub,):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    finally:
        os.unlink(lines)


def pika_consumer(port, queue, n, ready, received, done, idle_timeout):
    import pika
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.basic_qos(prefetch_count=1000)
    state = {"count": 0, "last": 0.0}

    def on_message(c, method, props, body):
        c.basic_ack(method.delivery_tag)
        state["count"] += 1
        state["last"] = time.monotonic()
        if state["count"] % 500 == 0 or state["count"] == n:
            received.value = state["count"]
        if state["count"] >= n:
            c.stop_consuming()

    ch.basic_consume(queue, on_message, auto_ack=False)
    ready.set()
    began = time.monotonic()
    while state["count"] < n and time.monotonic() - (state["last"] or began) <= idle_timeout + (0 if state["last"] else 30):
        conn.process_data_events(time_limit=0.2)
    conn.close()
    done.put((state["count"], state["last"]))


def run_pika(port, persistent, n, backlog, idle_timeout):
    import pika
    queue = "bench-py-" + uuid.uuid4().hex[:8]
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port))
    ch = conn.channel()
    ch.queue_declare(queue, durable=persistent, auto_delete=False)
    ready, done, received = mp.Event(), mp.Queue(), mp.Value("l", 0)
    consumer = mp.Process(target=pika_consumer, args=(port, queue, n, ready, received, done, idle_timeout))
    consumer.start()
    try:
        if not ready.wait(20):
            raise RuntimeError("consumer not ready within 20 s")
        props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
        if persistent:
            ch.confirm_delivery()
        start = time.monotonic()
        for i in range(n):
            if i % 500 == 0:
                wait_backlog(i, received, backlog)
            ch.basic_publish("", queue, PAYLOAD, props)
        count, last = done.get(timeout=600)
        ch.queue_delete(queue)
        conn.close()
        # With confirms on, BlockingChannel raises on a nack or a timeout: every publish returned was confirmed.
        return count, last - start if last else float("inf"), n if persistent else None
    finally:
        consumer.join(30)
        if consumer.is_alive():
            consumer.kill()


def run_one(scenario, port, n, args):
    if scenario == "paho-qos0":
        return run_paho(port, 0, False, n, args.backlog, args.idle_timeout)
    if scenario == "paho-qos1":
        return run_paho(port, 1, False, n, args.backlog, args.idle_timeout)
    if scenario == "paho5-qos1":
        return run_paho(port, 1, True, n, args.backlog, args.idle_timeout)
    if scenario == "mosquitto-clients-qos1":
        return run_mosquitto_clients(port, n, args.idle_timeout)
    if scenario == "pika-manualack":
        return run_pika(port, False, n, args.backlog, args.idle_timeout)
    if scenario == "pika-confirms":
        return run_pika(port, True, n, args.backlog, args.idle_timeout)
    raise ValueError(scenario)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mqtt", action="append", default=[], help="NAME=PORT of an MQTT broker (ours first)")
    p.add_argument("--amqp", action="append", default=[], help="NAME=PORT of an AMQP broker (ours first)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--messages-confirms", type=int, default=5000, help="messages of pika-confirms (one confirm at a time)")
    p.add_argument("--backlog", type=int, default=10000)
    p.add_argument("--idle-timeout", type=float, default=10.0)
    p.add_argument("--scenario", default="all")
    p.add_argument("--out", default=None, help="also write the table here")
    args = p.parse_args()
    brokers = {"mqtt": [b.split("=", 1) for b in args.mqtt], "amqp": [b.split("=", 1) for b in args.amqp]}
    ids = list(SCENARIOS) if args.scenario == "all" else args.scenario.split(",")
    rows = []
    for sid in ids:
        proto, title = SCENARIOS[sid]
        targets = brokers[proto]
        if len(targets) < 2:
            print(f"{sid}: needs two {proto} brokers, skipped", file=sys.stderr)
            continue
        n = args.messages_confirms if sid == "pika-confirms" else args.messages
        rates = {name: [] for name, _ in targets}
        lost = {name: 0 for name, _ in targets}
        for r in range(args.runs):
            for name, port in targets:
                count, seconds, acked = run_one(sid, int(port), n, args)
                rate = count / seconds if seconds > 0 else 0.0
                rates[name].append(rate)
                lost[name] += n - count
                print(f"[{name}] {sid} run {r + 1}/{args.runs}: {rate:,.0f} msg/s received {count}/{n} acked {'n/a' if acked is None else acked}",
                      file=sys.stderr, flush=True)
        (ours, _), (peer, _) = targets[0], targets[1]
        mo, mp_ = statistics.median(rates[ours]), statistics.median(rates[peer])
        rows.append(f"| {title} | {mo:,.0f} | {mp_:,.0f} ({peer}) | {mo / mp_ if mp_ else 0:.2f}× | {lost[ours]} of {n * args.runs} | "
                    f"{lost[peer]} of {n * args.runs} |")
    table = "\n".join(["| scenario (msg/s, median) | ours | peer | ours/peer | lost (ours) | lost (peer) |",
                       "|---|--:|--:|--:|--:|--:|", *rows])
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
