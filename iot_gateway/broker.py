"""Brokers the suite can start itself, behind one small interface.

- AmqttBroker: the embedded broker (PyPI `amqtt`, MQTT 3.1.1 only) in a thread of this process,
  for a machine with no broker; `amqtt` is imported only when one is started. It runs with the
  plugins of iot_gateway/amqtt_plugins.py, which keep QoS 1 at-least-once for a persistent
  session whose client is killed (amqtt's defaults lose those messages).
- MosquittoProcess: a private Mosquitto on a loopback port (tests that restart a broker use
  one, never the shared Mosquitto), with its own persistence so sessions survive a restart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from iot_gateway.errors import BrokerError, ConfigError


class LocalBroker(Protocol):
    """A broker this process started: where it listens, and how to stop or restart it."""

    @property
    def url(self) -> str: ...

    @property
    def supports_mqtt5(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BrokerError(f"broker did not listen on 127.0.0.1:{port} within {timeout_s}s")


class AmqttBroker:
    """amqtt's broker on its own event loop thread, on 127.0.0.1:port."""

    supports_mqtt5 = False

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError as exc:
            raise ConfigError(
                "no MQTT broker reachable and the embedded broker needs `amqtt` (pip install amqtt)"
            ) from exc
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
            self._thread.start()
        from iot_gateway.amqtt_plugins import broker_plugins

        # Not amqtt's default plugins: its anonymous authentication makes the broker drop what
        # a disconnected persistent session should receive (see iot_gateway/amqtt_plugins.py)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": broker_plugins(),
        }

        async def run() -> Any:
            broker = Broker(config)
            await broker.start()
            return broker

        self._broker = asyncio.run_coroutine_threadsafe(run(), self._loop).result(15)
        _wait_listening(self.port, 10)

    def stop(self) -> None:
        if self._broker is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(15)
            self._broker = None

    def close(self) -> None:
        self.stop()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)


class MosquittoProcess:
    """A private mosquitto process on a loopback port, persistence in its own folder."""

    supports_mqtt5 = True

    def __init__(self, port: int | None = None, *, folder: Path | None = None) -> None:
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            raise ConfigError("mosquitto is not installed")
        self.binary = binary
        self.port = port or free_port()
        self.folder = folder or Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.folder / "mosquitto.conf"
        # Run as root, mosquitto drops to user "mosquitto", which cannot write our folder
        user = "user root\n" if os.geteuid() == 0 else ""
        config.write_text(
            user + f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.folder}/\n"
            "autosave_interval 1\n"
            "max_queued_messages 100000\n"
            "log_dest none\n"
        )
        self._process = subprocess.Popen(
            [self.binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _wait_listening(self.port, 10)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(10)
            self._process = None

    def close(self) -> None:
        self.stop()


def start_embedded_broker(port: int | None = None) -> AmqttBroker:
    """The embedded broker `smartcity up` starts when no broker is reachable."""
    broker = AmqttBroker(port)
    broker.start()
    return broker
