#!/usr/bin/env python3
"""paho-mqtt 2.x against one MQTT broker, in 3.1.1 and 5.0: run by `cargo xtask interop`.

Checks, each in both versions unless marked: QoS 0, 1 and 2 publish -> subscribe (the publisher's
flow completes: PUBACK, or PUBREC/PUBREL/PUBCOMP; the subscriber's QoS 2 message is handed over
after PUBREL), retained set / late subscriber / clear, a will published when the socket closes
without DISCONNECT, a persistent session (session present, messages queued while offline), a
shared subscription (each message to exactly one member), and in 5.0 only: publish properties
(with a subscription identifier), a topic alias set by the publishing client, and No Local.

Prints one `PASS <prefix><name> (<seconds> s)` or `FAIL <prefix><name>: <why>` line per check.
Exit status: 0 all passed, 1 some failed, 2 could not run (paho-mqtt missing or too old).
Every wait is bounded by --timeout; nothing sleeps a fixed time.

usage: paho_check.py --port PORT [--host HOST] [--prefix TEXT] [--timeout SECONDS]
"""

import argparse
import os
import queue
import socket
import sys
import time

try:
    import paho.mqtt
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
except ImportError as e:  # pragma: no cover - environment problem, not a check
    print(f"paho_check: paho-mqtt is not installed ({e}); pip install 'paho-mqtt>=2'", file=sys.stderr)
    sys.exit(2)

if int(paho.mqtt.__version__.split(".")[0]) < 2:
    print(f"paho_check: paho-mqtt {paho.mqtt.__version__} found, 2.x needed", file=sys.stderr)
    sys.exit(2)

VERSIONS = [("v3.1.1", mqtt.MQTTv311), ("v5", mqtt.MQTTv5)]


class Failure(Exception):
    """A check's expectation was not met."""


def expect(cond, what):
    if not cond:
        raise Failure(what)


class Peer:
    """One paho client with its network loop on a thread; what arrives is put on queues."""

    def __init__(self, ctx, version, client_id, *, clean=True, expiry=None, will=None):
        self.ctx = ctx
        self.version = version
        self.id = client_id
        kwargs = {"clean_session": clean} if version == mqtt.MQTTv311 else {}
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=version,
            reconnect_on_failure=False,
            **kwargs,
        )
        self.connacks = queue.Queue()
        self.messages = queue.Queue()
        self.subacks = queue.Queue()
        self.acks = {}
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.messages.put(m)
        self.client.on_subscribe = lambda _c, _u, mid, codes, _p: self.subacks.put((mid, codes))
        self.client.on_publish = self._on_publish
        if will is not None:
            topic, payload, qos = will
            self.client.will_set(topic, payload, qos)
        connect = {}
        if version == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            if expiry is not None:
                props.SessionExpiryInterval = expiry
            connect = {"clean_start": clean, "properties": props}
        ctx.peers.append(self)
        self.client.connect(ctx.host, ctx.port, keepalive=30, **connect)
        self.client.loop_start()
        self.session_present, code, self.connack_props = ctx.get(self.connacks, f"CONNACK for {client_id}")
        expect(not code.is_failure, f"CONNACK for {client_id}: {code}")

    def _on_connect(self, _c, _u, flags, code, props):
        self.connacks.put((flags.session_present, code, props))

    def _on_publish(self, _c, _u, mid, code, _props):
        self.acks[mid] = code

    def subscribe(self, topic, qos, properties=None, no_local=False):
        if self.version == mqtt.MQTTv5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local)
            result, mid = self.client.subscribe(topic, options=opts, properties=properties)
        else:
            result, mid = self.client.subscribe(topic, qos)
        expect(result == mqtt.MQTT_ERR_SUCCESS, f"SUBSCRIBE {topic}: {result}")
        got_mid, codes = self.ctx.get(self.subacks, f"SUBACK for {topic}")
        expect(got_mid == mid, f"SUBACK for mid {got_mid}, expected {mid}")
        expect(len(codes) == 1 and not codes[0].is_failure, f"SUBACK for {topic}: {codes}")
        expect(codes[0].value == qos, f"SUBACK for {topic} granted {codes[0].value}, asked {qos}")

    def publish(self, topic, payload, qos, retain=False, properties=None):
        """Publishes and waits until the flow completes (QoS 2: PUBCOMP) with success."""
        info = self.client.publish(topic, payload, qos, retain, properties)
        expect(info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish to {topic!r}: {info.rc}")
        info.wait_for_publish(self.ctx.timeout)
        expect(info.is_published(), f"publish to {topic!r} at QoS {qos}: no acknowledgement")
        code = self.acks.get(info.mid)
        expect(code is None or not code.is_failure, f"publish to {topic!r}: {code}")

    def recv(self, what="a message"):
        return self.ctx.get(self.messages, f"{what} on {self.id}")

    def disconnect(self):
        """DISCONNECT, then the loop thread stops."""
        self.client.disconnect()
        self.client.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (as a crash would), then stops the loop."""
        sock = self.client.socket()
        expect(sock is not None, f"{self.id} has no socket")
        sock.shutdown(socket.SHUT_RDWR)
        self.client.loop_stop()

    def close(self):
        try:
            if self.client.is_connected():
                self.client.disconnect()
        finally:
            self.client.loop_stop()


class Context:
    """The broker, the run's unique tag, and the peers of the running check."""

    def __init__(self, host, port, timeout, tag):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.tag = tag
        self.peers = []

    def get(self, q, what):
        try:
            return q.get(timeout=self.timeout)
        except queue.Empty:
            raise Failure(f"timed out after {self.timeout} s waiting for {what}") from None

    def name(self, *parts):
        """A client id or topic unique to this run."""
        return "/".join(("paho", self.tag) + parts)

    def close_all(self):
        for peer in self.peers:
            try:
                peer.close()
            except Exception:  # noqa: BLE001 - cleanup after a failure must not hide it
                pass
        self.peers = []


def ident(ctx, *parts):
    return ctx.name(*parts).replace("/", "-")


# ---- checks: each takes (ctx, version, v) and raises on failure ----


def check_qos(qos):
    def check(ctx, version, v):
        topic = ctx.name(v, "qos", str(qos))
        sub = Peer(ctx, version, ident(ctx, v, "qos-sub", str(qos)))
        sub.subscribe(topic, qos)
        pub = Peer(ctx, version, ident(ctx, v, "qos-pub", str(qos)))
        payload = f"paho QoS {qos}".encode()
        pub.publish(topic, payload, qos)
        m = sub.recv()
        got = (m.topic, m.payload, m.qos, m.retain)
        expect(got == (topic, payload, qos, False), f"received {got}")

    return check


def check_retained(ctx, version, v):
    topic = ctx.name(v, "retain", "t")
    pub = Peer(ctx, version, ident(ctx, v, "ret-pub"))
    pub.publish(topic, b"kept", 1, retain=True)
    late = Peer(ctx, version, ident(ctx, v, "ret-late"))
    late.subscribe(topic, 1)
    m = late.recv("the retained message")
    expect((m.topic, m.payload, m.retain) == (topic, b"kept", True), f"retained: got {(m.topic, m.payload, m.retain)}")
    pub.publish(topic, b"", 1, retain=True)
    m = late.recv("the clearing message")
    expect(m.payload == b"", f"clearing message delivered as {m.payload!r}")
    after = Peer(ctx, version, ident(ctx, v, "ret-after"))
    after.subscribe(topic, 1)
    # Retained messages come with the subscription, before anything published later.
    pub.publish(topic, b"live", 1)
    m = after.recv("the live message")
    expect((m.payload, m.retain) == (b"live", False), f"after clearing, first message {(m.payload, m.retain)}")


def check_will(ctx, version, v):
    topic = ctx.name(v, "will")
    watcher = Peer(ctx, version, ident(ctx, v, "will-watch"))
    watcher.subscribe(topic, 1)
    victim = Peer(ctx, version, ident(ctx, v, "will-victim"), will=(topic, b"paho gone", 1))
    victim.drop()
    m = watcher.recv("the will")
    expect((m.topic, m.payload) == (topic, b"paho gone"), f"will: got {(m.topic, m.payload)}")


def check_session(ctx, version, v):
    topic = ctx.name(v, "session")
    cid = ident(ctx, v, "persistent")
    sub = Peer(ctx, version, cid, clean=False, expiry=300)
    sub.subscribe(topic, 1)
    sub.disconnect()
    pub = Peer(ctx, version, ident(ctx, v, "session-pub"))
    sent = [f"offline {i}".encode() for i in range(3)]
    for payload in sent:
        pub.publish(topic, payload, 1)
    back = Peer(ctx, version, cid, clean=False, expiry=300)
    expect(back.session_present, "CONNACK session present is 0")
    got = [back.recv("a queued message").payload for _ in sent]
    expect(got == sent, f"queued messages: {got}")


def check_shared(ctx, version, v):
    n = 10
    topic = ctx.name(v, "shared", "t")
    end = ctx.name(v, "shared", "end")
    members = []
    for i in range(2):
        m = Peer(ctx, version, ident(ctx, v, "share", str(i)))
        m.subscribe(f"$share/g/{topic}", 1)
        m.subscribe(end, 1)
        members.append(m)
    pub = Peer(ctx, version, ident(ctx, v, "share-pub"))
    for i in range(n):
        pub.publish(topic, str(i).encode(), 1)
    pub.publish(end, b"end", 1)
    seen = []
    counts = []
    for m in members:
        count = 0
        while True:
            msg = m.recv("a shared message or the end marker")
            if msg.topic == end:
                break
            seen.append(int(msg.payload))
            count += 1
        counts.append(count)
    expect(sorted(seen) == list(range(n)), f"shared: received {sorted(seen)} (per member {counts})")


def check_properties(ctx, version, v):
    topic = ctx.name(v, "props")
    sub = Peer(ctx, version, ident(ctx, v, "props-sub"))
    sub_props = Properties(PacketTypes.SUBSCRIBE)
    sub_props.SubscriptionIdentifier = 42
    sub.subscribe(topic, 1, properties=sub_props)
    pub = Peer(ctx, version, ident(ctx, v, "props-pub"))
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k", "v"), ("k", "v2")]
    props.ContentType = "text/plain"
    props.MessageExpiryInterval = 60
    props.PayloadFormatIndicator = 1
    props.ResponseTopic = ctx.name(v, "reply")
    props.CorrelationData = b"\x00corr\xff"
    pub.publish(topic, b"with properties", 1, properties=props)
    m = sub.recv()
    p = m.properties
    expect(m.payload == b"with properties", f"payload {m.payload!r}")
    expect(getattr(p, "UserProperty", None) == [("k", "v"), ("k", "v2")], f"user properties {getattr(p, 'UserProperty', None)}")
    expect(getattr(p, "ContentType", None) == "text/plain", f"content type {getattr(p, 'ContentType', None)}")
    expiry = getattr(p, "MessageExpiryInterval", None)
    expect(expiry is not None and 58 <= expiry <= 60, f"message expiry {expiry}")
    expect(getattr(p, "PayloadFormatIndicator", None) == 1, "payload format indicator")
    expect(getattr(p, "ResponseTopic", None) == ctx.name(v, "reply"), "response topic")
    expect(getattr(p, "CorrelationData", None) == b"\x00corr\xff", "correlation data")
    expect(getattr(p, "SubscriptionIdentifier", None) == [42], f"subscription id {getattr(p, 'SubscriptionIdentifier', None)}")


def check_topic_alias(ctx, version, v):
    topic = ctx.name(v, "alias")
    sub = Peer(ctx, version, ident(ctx, v, "alias-sub"))
    sub.subscribe(topic, 1)
    pub = Peer(ctx, version, ident(ctx, v, "alias-pub"))
    maximum = getattr(pub.connack_props, "TopicAliasMaximum", 0)
    expect(maximum >= 1, f"CONNACK Topic Alias Maximum {maximum}: no alias allowed")
    for name, payload in ((topic, b"first"), ("", b"second"), ("", b"third")):
        props = Properties(PacketTypes.PUBLISH)
        props.TopicAlias = 1
        pub.publish(name, payload, 1, properties=props)
        m = sub.recv()
        expect((m.topic, m.payload) == (topic, payload), f"aliased publish arrived as {(m.topic, m.payload)}")


def check_no_local(ctx, version, v):
    topic = ctx.name(v, "nolocal")
    me = Peer(ctx, version, ident(ctx, v, "nolocal-me"))
    me.subscribe(topic, 1, no_local=True)
    me.publish(topic, b"own", 1)
    other = Peer(ctx, version, ident(ctx, v, "nolocal-other"))
    other.publish(topic, b"other", 1)
    m = me.recv()
    expect(m.payload == b"other", f"No Local: first message {m.payload!r}")


CHECKS = [
    ("qos0 pub/sub", check_qos(0), False),
    ("qos1 pub/sub", check_qos(1), False),
    ("qos2 pub/sub (PUBREC/PUBREL/PUBCOMP both ways)", check_qos(2), False),
    ("retained set/get/clear", check_retained, False),
    ("will on abrupt close", check_will, False),
    ("persistent session", check_session, False),
    ("shared subscription", check_shared, False),
    ("publish properties + subscription id", check_properties, True),
    ("topic alias from the client", check_topic_alias, True),
    ("no local", check_no_local, True),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="paho ")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    tag = f"{os.getpid()}-{int(time.time() * 1000) % 1_000_000}"
    failed = 0
    for vname, version in VERSIONS:
        for name, check, v5_only in CHECKS:
            if v5_only and version != mqtt.MQTTv5:
                continue
            ctx = Context(args.host, args.port, args.timeout, tag)
            label = f"{args.prefix}{vname} {name}"
            start = time.monotonic()
            try:
                check(ctx, version, vname)
                print(f"PASS {label} ({time.monotonic() - start:.2f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 - any error fails this check only
                failed += 1
                print(f"FAIL {label}: {e}", flush=True)
            finally:
                ctx.close_all()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
