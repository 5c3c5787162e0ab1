"""A continuous acks=all idempotent producer for the day-two tests, and the check that every
message Kafka acknowledged during an operation can be read back (lost must be 0)."""

from __future__ import annotations

import json
import threading
import time
import uuid

import kopsrun
from kopsrun import poll


class Load:
    """A bounded background producer (acks=all, idempotent) that records what Kafka acked."""

    def __init__(self, bootstrap: str, topic: str, *, seconds: float = 600, count: int = 200_000):
        from confluent_kafka import Producer

        self.topic, self.seconds, self.count = topic, seconds, count
        self.run = uuid.uuid4().hex[:8]   # keys of this load only: earlier loads' are not duplicates
        self.acked: list[bytes] = []
        self.errors: list[str] = []
        self.produced = 0
        self.stop_ = threading.Event()
        self.producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                  "message.timeout.ms": 180000, "linger.ms": 5, "log_level": 0})
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _done(self, err, msg):
        if err:
            self.errors.append(str(err))
        else:
            self.acked.append(msg.key())

    def _run(self):
        from confluent_kafka import KafkaException

        t0 = time.monotonic()
        while not self.stop_.is_set() and self.produced < self.count and time.monotonic() - t0 < self.seconds:
            key = f"{self.run}-{self.produced}".encode()
            try:
                self.producer.produce(self.topic, key=key, value=key, on_delivery=self._done)
                self.produced += 1
            except BufferError:
                pass
            except KafkaException as exc:   # e.g. the topic's metadata briefly unknown mid-roll: keep producing
                self.errors.append(f"produce: {exc}")
                time.sleep(0.1)
                continue
            self.producer.poll(0)
            time.sleep(0.005)
        self.producer.flush(180)

    def __enter__(self):
        self.thread.start()
        return self

    def flowing(self, acked: int = 50, timeout: float = 60) -> None:
        """Until the load is really flowing (messages acknowledged), never a fixed sleep."""
        def started():
            assert len(self.acked) >= acked, f"{len(self.acked)} acked, {self.errors[:3]}"
            return True
        poll(started, timeout=timeout, interval=0.05, what="the load to start")

    def __exit__(self, *exc):
        self.stop_.set()
        self.thread.join(240)

    def verify(self, bootstrap: str, what: str, seconds: float) -> dict:
        """Read the whole topic back; every acknowledged key must be there."""
        from confluent_kafka import Consumer

        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t13-{uuid.uuid4().hex[:6]}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 0})
        c.subscribe([self.topic])
        want = set(self.acked)
        missing = set(want)   # shrinks as keys are read: the loop stays linear in the messages
        seen: dict[bytes, int] = {}
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and missing:
            m = c.poll(0.5)
            if m is not None and not m.error():
                if m.key().startswith(self.run.encode()):
                    seen[m.key()] = seen.get(m.key(), 0) + 1
                    missing.discard(m.key())
        c.close()
        lost = missing
        figures = {"operation": what, "seconds": round(seconds, 1), "produced": self.produced,
                   "acknowledged": len(want), "lost": len(lost),
                   "duplicates": sum(n - 1 for k, n in seen.items() if n > 1 and k in want),
                   "errors": len(self.errors)}
        print(f"\nFIGURES {json.dumps(figures)}")
        assert not lost, f"{len(lost)} acknowledged messages lost during {what}: {sorted(lost)[:5]}"
        assert len(want) > 100, f"the producer got too little through during {what}: {figures}"
        return figures


def kops(*args, env, timeout=1200):
    """kopsrun.kops for the day-two operations: up to 20 minutes each unless told otherwise."""
    return kopsrun.kops(*args, env=env, timeout=timeout)
