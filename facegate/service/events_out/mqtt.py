"""MQTT delivery with Home Assistant discovery (paho-mqtt, MQTT 3.1.1, QoS 1).

Topics, with the target's ``topic_prefix`` (default ``facegate``) and ``node_id`` (default ``facegate``):

* ``<prefix>/status``: ``online`` / ``offline``, retained. ``offline`` is the connection's Last
  Will, so the broker publishes it when facegate disappears without saying goodbye.
* ``<prefix>/gate/<gate>/decision``: every gate decision, QoS 1, **not retained** (a retained
  ``allow`` would be replayed to every new subscriber, and an automation could open a door
  again after a Home Assistant restart). The payload is the webhook's standard JSON.
* ``<prefix>/watch/identified``: ``watch --events-out`` identifications.
* ``<discovery_prefix>/sensor/<node_id>_<gate>/decision/config`` (default discovery prefix
  ``homeassistant``), retained: one sensor entity per gate whose state is the last decision
  (``allow``/``deny``) with the person and the reason as attributes, available while
  ``<prefix>/status`` is ``online``. Published on every (re)connection for the gates the
  service has seen, and before a new gate's first decision.

Reconnection is paho's own (1 s, doubling to 30 s). A publish is a success only once the
broker acknowledged it (PUBACK); otherwise the outbox row stays and is retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

from facegate.service.events_out.targets import Target
from facegate.service.events_out.webhook import DeliveryError, check_destination_now

log = logging.getLogger(__name__)

DISCOVERY_COMPONENT = "sensor"


def slug(gate: str) -> str:
    """A discovery object id for a gate name ([A-Za-z0-9_-]); names that change get a short hash."""
    s = re.sub(r"[^A-Za-z0-9_-]", "_", gate)
    return s if s == gate else f"{s}_{hashlib.sha256(gate.encode()).hexdigest()[:6]}"


def topics(target: Target) -> dict[str, str]:
    p = target.options.get("topic_prefix") or "facegate"
    return {"status": f"{p}/status", "gate": f"{p}/gate/{{gate}}/decision", "watch": f"{p}/watch/identified",
            "test": f"{p}/test"}


def topic_for(target: Target, kind: str, payload: dict[str, Any]) -> str:
    t = topics(target)
    if kind == "gate.decision":
        return t["gate"].format(gate=payload.get("gate") or "unknown")
    if kind == "watch.identified":
        return t["watch"]
    return t["test"]


def discovery(target: Target, gate: str) -> tuple[str, dict[str, Any]] | None:
    """(config topic, config payload) of the Home Assistant sensor of one gate; None when discovery is off."""
    prefix = target.options.get("discovery_prefix", "homeassistant")
    if not prefix:
        return None
    node = target.options.get("node_id") or "facegate"
    t = topics(target)
    object_id = f"{node}_{slug(gate)}"
    state = t["gate"].format(gate=gate)
    config = {
        "name": "Last decision",
        "unique_id": f"{object_id}_decision",
        "state_topic": state,
        "value_template": "{{ value_json.decision }}",
        "json_attributes_topic": state,
        "json_attributes_template": (
            "{{ {'person': value_json.name, 'person_id': value_json.person_id, 'reason': value_json.reason, "
            "'score': value_json.score, 'threshold': value_json.threshold, 'far': value_json.far, "
            "'fpir': value_json.fpir, 'event_id': value_json.event_id, 'time': value_json.time} | tojson }}"
        ),
        "availability_topic": t["status"],
        "payload_available": "online",
        "payload_not_available": "offline",
        "icon": "mdi:door",
        "qos": 1,
        "device": {
            "identifiers": [object_id],
            "name": f"facegate gate {gate}",
            "manufacturer": "facegate",
            "model": "face access gate",
        },
    }
    return f"{prefix}/{DISCOVERY_COMPONENT}/{object_id}/decision/config", config


class MqttLink:
    """One broker connection of one target, kept open by paho's network thread."""

    def __init__(self, target: Target, timeout: float = 5.0, known_gates: Callable[[], list[str]] | None = None,
                 on_connect: Callable[[], None] | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.target = target
        self.timeout = float(timeout)
        self.known_gates = known_gates or (lambda: [])
        self.on_connect = on_connect
        self.announced: set[str] = set()
        self._needs_announce = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        node = target.options.get("node_id") or "facegate"
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{node}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{target.name}"[:64],  # unique: a test beside the worker
            protocol=mqtt.MQTTv311,
        )
        if target.username:
            self.client.username_pw_set(target.username, target.secret)
        if target.url.startswith("mqtts://"):
            self.client.tls_set()
        self.client.will_set(topics(target)["status"], "offline", qos=1, retain=True)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.last_error: str | None = None
        self.client.connect_async(target.host, target.port, keepalive=30)
        self.client.loop_start()

    # paho's network thread: only flags here, the target's own thread does the publishing
    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if getattr(reason_code, "is_failure", False):
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning("mqtt %s: %s", self.target.name, self.last_error)
            return
        log.info("mqtt %s: connected to %s:%d", self.target.name, self.target.host, self.target.port)
        self.last_error = None
        self.announced.clear()
        self._needs_announce.set()
        if self.on_connect is not None:
            self.on_connect()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any = None) -> None:
        if not self._closed:
            self.last_error = f"disconnected from the broker ({reason_code}); reconnecting"
            log.warning("mqtt %s: %s", self.target.name, self.last_error)

    @property
    def connected(self) -> bool:
        return bool(self.client.is_connected())

    def _publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        if not self.connected:
            raise DeliveryError(self.last_error or f"not connected to the broker at {self.target.host}:{self.target.port}")
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise DeliveryError(f"publish to {topic} failed: {exc}") from None
        if not info.is_published():
            raise DeliveryError(f"the broker did not acknowledge {topic} within {self.timeout:g} s")

    def announce(self) -> None:
        """Availability and the discovery configs of every gate seen (after each (re)connection)."""
        if not self._needs_announce.is_set() or not self.connected:
            return
        self._needs_announce.clear()
        try:
            self._publish(topics(self.target)["status"], "online", retain=True)
            for gate in self.known_gates():
                self.announce_gate(gate)
        except DeliveryError:
            self._needs_announce.set()
            raise

    def announce_gate(self, gate: str) -> None:
        if gate in self.announced:
            return
        d = discovery(self.target, gate)
        if d is not None:
            self._publish(d[0], json.dumps(d[1], separators=(",", ":")), retain=True)
        self.announced.add(gate)

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        """Publish one payload (QoS 1) on its topic; raises DeliveryError unless the broker acknowledged it."""
        with self._lock:
            self.announce()
            if kind == "gate.decision" and payload.get("gate"):
                self.announce_gate(str(payload["gate"]))
            self._publish(topic_for(self.target, kind, payload), json.dumps(payload, separators=(",", ":")))

    def wait_connected(self, timeout: float) -> bool:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.connected:
                return True
            time.sleep(0.02)
        return self.connected

    def close(self) -> None:
        """Say ``offline`` (a clean exit does not trigger the Last Will) and disconnect."""
        self._closed = True
        try:
            if self.connected:
                info = self.client.publish(topics(self.target)["status"], "offline", qos=1, retain=True)
                info.wait_for_publish(min(self.timeout, 2.0))
        except (RuntimeError, ValueError) as exc:
            log.debug("mqtt %s: offline not published: %s", self.target.name, exc)
        self.client.disconnect()
        self.client.loop_stop()


def deliver_once(target: Target, kind: str, payload: dict[str, Any], timeout: float = 5.0) -> None:
    """Connect, publish one payload, disconnect (``facegate hooks test``)."""
    check_destination_now(target)
    link = MqttLink(target, timeout)
    try:
        if not link.wait_connected(timeout):
            raise DeliveryError(link.last_error or f"could not connect to {target.host}:{target.port} within {timeout:g} s")
        link.deliver(kind, payload)
    finally:
        link.close()
