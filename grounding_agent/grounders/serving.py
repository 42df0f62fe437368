"""Run vLLM's OpenAI-compatible server as a subprocess: start, wait until healthy, stop.

vLLM lives in its own environment (its torch/transformers pins differ from ours), so the server is a
separate process that the library only talks to over the OpenAI API, as in production:

    with VLLMServer("Qwen/Qwen2.5-VL-7B-Instruct", loras={"charades": "runs/lora"}) as server:
        grounder = VLLMGrounder(server.base_url, model="charades")  # or any OpenAI client

Backs `grounding-agent serve` and the test fixture `vllm_server`.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grounding_agent.defaults import LOCAL_SERVER
from grounding_agent.errors import ConfigError, ServerError, ServerStartError
from grounding_agent.io import check_model_source

log = logging.getLogger(__name__)

# The checkout's vLLM environment (scripts/setup_env.sh makes it).
CHECKOUT_VLLM_PYTHON = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
LOG_TAIL_LINES = 40


def vllm_python() -> str:
    """Python of the vLLM environment: $GA_VLLM_PYTHON, else the checkout's .venv-vllm, else this one."""
    if env := os.environ.get("GA_VLLM_PYTHON"):
        return env
    if CHECKOUT_VLLM_PYTHON.exists():
        return str(CHECKOUT_VLLM_PYTHON)
    return sys.executable


def check_server_url(url: object, option: str = "--server") -> str:
    """The URL if it is a well-formed http(s) URL with a host (and a port in range); else `ConfigError`.

    Checked before a client is built: a malformed URL otherwise fails deep inside the HTTP client.
    """
    example = "e.g. http://127.0.0.1:8000/v1"
    if not isinstance(url, str) or not url.strip() or any(c.isspace() or c == "\x00" for c in url):
        raise ConfigError(f"{option} must be an http(s) URL without spaces, {example}; got {url!r}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError when out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"{option} {url} is not a valid URL ({exc}); {example}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{option} {url} is not an http(s) URL with a host; {example}")
    return url


def check_host(host: str) -> str:
    """The host if this machine can listen on it (a name that resolves to a local address).

    Raises:
        ConfigError: the name does not resolve, or no interface here has that address.
    """
    if not isinstance(host, str) or not host.strip() or "\x00" in host:
        raise ConfigError(f"--host must be a host name or IP address, got {host!r}")
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"--host {host}: cannot resolve it ({exc}); use 127.0.0.1 or 0.0.0.0") from None
    for family, _, _, _, address in infos:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.bind((address[0], 0))
            return host
        except OSError:
            continue
    raise ConfigError(f"--host {host}: no interface here has that address; use 127.0.0.1 or 0.0.0.0")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def read_log_tail(path: str | Path, lines: int = LOG_TAIL_LINES) -> str:
    """Last `lines` lines of a log file ('' if it does not exist)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@dataclass
class VLLMServer:
    """One `vllm.entrypoints.openai.api_server` process.

    Args:
        model: hub id or local folder of the base model.
        served_model_name: the name requests use as `model` (default: `model` as given).
        loras: adapter name -> PEFT adapter folder; each is served under its name.
        host, port: where to listen; port None picks a free one.
        max_model_len: context length (must be <= the model's max_position_embeddings).
        limit_mm_per_prompt: most images/videos one request may carry.
        max_lora_rank: largest LoRA rank the server accepts.
        enforce_eager: skip graph capture/compilation (starts much faster; needed on CPU).
        extra_args: appended to the command line as is.
        python: interpreter of the vLLM environment (default: `vllm_python()`).
        log_path: where the server's stdout/stderr go (default: a temp file).
        env: extra environment variables for the server.
    """

    model: str | Path
    served_model_name: str | None = None
    loras: Mapping[str, str | Path] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int | None = None
    max_model_len: int = LOCAL_SERVER.max_model_len
    limit_mm_per_prompt: Mapping[str, int] = field(default_factory=LOCAL_SERVER.limit_mm_per_prompt)
    max_lora_rank: int = LOCAL_SERVER.max_lora_rank
    enforce_eager: bool = True
    extra_args: Sequence[str] = ()
    python: str | None = None
    log_path: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Everything checkable is checked here, before a start that takes half a minute to fail.
        check_model_source(self.model, "model")
        if self.port is not None and (isinstance(self.port, bool) or not isinstance(self.port, int)
                                      or not 0 <= self.port <= 65535):  # fmt: skip
            raise ConfigError(f"port must be 0-65535 (0 or None = any free port), got {self.port!r}")
        check_host(self.host)
        for name, value in (("max_model_len", self.max_model_len), ("max_lora_rank", self.max_lora_rank)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")
        for kind, n in dict(self.limit_mm_per_prompt).items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ConfigError(f"limit_mm_per_prompt[{kind!r}] must be a whole number >= 0, got {n!r}")
        self.python = self.python or vllm_python()
        self.served_model_name = self.served_model_name or str(self.model)
        self.port = self.port or free_port(self.host)
        for name, path in self.loras.items():
            if not (Path(path) / "adapter_config.json").is_file():
                raise ConfigError(f"LoRA {name!r}: {path} is no PEFT adapter folder (no adapter_config.json)")

    # --- what runs ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root URL, e.g. http://127.0.0.1:8000 (health at /health)."""
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI API base URL (…/v1), for `openai.OpenAI(base_url=...)`."""
        return f"{self.url}/v1"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        cmd = [
            str(self.python), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model),
            "--served-model-name", str(self.served_model_name),
            "--host", self.host,
            "--port", str(self.port),
            "--max-model-len", str(self.max_model_len),
            "--limit-mm-per-prompt", json.dumps(dict(self.limit_mm_per_prompt)),
            "--enable-prefix-caching",
        ]  # fmt: skip
        if self.enforce_eager:
            cmd.append("--enforce-eager")
        if self.loras:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank)]
            cmd += ["--max-loras", str(len(self.loras))]
            cmd += ["--lora-modules", *(f"{name}={path}" for name, path in self.loras.items())]
        return cmd + [str(a) for a in self.extra_args]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        # CPU KV cache in GiB (ignored on GPUs); vLLM's CPU default would reserve a big slice of RAM.
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        if Path(str(self.model)).is_dir():
            env.setdefault("HF_HUB_OFFLINE", "1")  # local weights: never wait on the hub
        env.update(self.env)
        return env

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self, timeout_s: float = 300.0) -> VLLMServer:
        """Launch the server and wait until /health answers.

        Raises:
            ConfigError: the vLLM python does not exist or the port is taken.
            ServerStartError: the process died or did not become healthy within `timeout_s`
                (carries the log tail); the process is stopped first.
        """
        if self.running:
            return self
        if not Path(str(self.python)).exists():
            raise ConfigError(f"vLLM python {self.python} not found: set GA_VLLM_PYTHON or run setup_env.sh")
        if _port_in_use(self.host, self.port):
            raise ConfigError(f"port {self.port} on {self.host} is already in use: pick another --port")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix=f"vllm-{self.port}-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        self.log_path = Path(self.log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log.info("starting vLLM: %s (log %s)", " ".join(self.command()), self.log_path)
        with open(self.log_path, "wb") as log_file:
            # Own process group: vLLM forks engine-core workers, and stop() must reach them too.
            self._proc = subprocess.Popen(
                self.command(), stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.environment(), start_new_session=True,
            )  # fmt: skip
        atexit.register(self.stop)
        try:
            self.wait_ready(timeout_s)
        except ServerStartError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout_s: float = 300.0, poll_s: float = 0.5) -> None:
        """Block until GET /health is 200; raise ServerStartError if the process dies or time runs out."""
        import httpx2

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise self._start_error(f"vLLM server exited with code {code} while starting")
            try:
                if httpx2.get(f"{self.url}/health", timeout=2.0).status_code == 200:
                    return
            except httpx2.TransportError:
                pass  # not listening yet
            time.sleep(poll_s)
        raise self._start_error(f"vLLM server not healthy after {timeout_s:.0f} s")

    def _start_error(self, what: str) -> ServerStartError:
        tail = read_log_tail(self.log_path) if self.log_path else ""
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "no output")
        return ServerStartError(f"{what}: {last} (full log: {self.log_path})", self.log_path, tail)

    def stop(self, grace_s: float = 15.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL it after `grace_s`. Idempotent.

        Returns:
            The server's exit code (None if it was never started).
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            self._signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                log.warning("vLLM server %d ignored SIGTERM for %.0f s: killing it", proc.pid, grace_s)
                self._signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Workers left behind in the group (the parent exited first) must not outlive us.
        self._signal_group(proc.pid, signal.SIGKILL)
        atexit.unregister(self.stop)
        return proc.returncode

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return read_log_tail(self.log_path, lines) if self.log_path else ""

    def check_alive(self) -> None:
        """Raise ServerError if the server process has exited."""
        if not self.running:
            raise ServerError(f"vLLM server at {self.url} is not running (log: {self.log_path})")

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
