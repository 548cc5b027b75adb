"""A real MQTT broker (Debian's `mosquitto`) on 127.0.0.1, for integration tests.

    from support.mosquitto import Mosquitto, running_mosquitto

    with running_mosquitto(tmp_path / "mqtt") as broker:
        with broker.subscribed("homelab/#") as messages:
            ...  # publish; `messages` fills with (topic, payload) pairs

It listens on a free port, anonymous and without persistence. Subscribing uses paho-mqtt (in
the `notify` and `dev` extras), imported only when a test subscribes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from support import free_port, need, wait_for
from support.servers import ServerProcess, listens


class Mosquitto:
    def __init__(self, directory: Path) -> None:
        self.program = need("mosquitto", "mosquitto")
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.config = directory / "mosquitto.conf"
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                               "persistence false\n")
        self.log = directory / "mosquitto.log"
        self.process = ServerProcess("mosquitto", self.log)

    def start(self) -> None:
        self.process.start([self.program, "-c", str(self.config)],
                           lambda: listens(self.port), f"port {self.port}")

    def stop(self) -> None:
        self.process.stop()

    @contextlib.contextmanager
    def subscribed(self, topic: str) -> Iterator[list[tuple[str, bytes]]]:
        """Messages published on `topic` (wildcards allowed) while the block runs."""
        import paho.mqtt.client as mqtt

        messages: list[tuple[str, bytes]] = []
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        subscribed: list[bool] = []
        client.on_message = lambda _c, _u, message: messages.append(
            (message.topic, bytes(message.payload)))
        client.on_subscribe = lambda *_: subscribed.append(True)
        client.connect("127.0.0.1", self.port)
        client.loop_start()
        try:
            client.subscribe(topic, qos=1)
            wait_for(lambda: bool(subscribed), what=f"the subscription to {topic}")
            yield messages
        finally:
            client.loop_stop()
            client.disconnect()


@contextlib.contextmanager
def running_mosquitto(directory: Path) -> Iterator[Mosquitto]:
    """A broker, stopped at the end, even on failure."""
    broker = Mosquitto(directory)
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
