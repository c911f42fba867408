"""`coe up`: prepare the models, start the profile's engines, then serve the gateway in this process."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import httpx

from coe_local.engines import EnginePlanError
from coe_local.models import ModelPrepareError, default_cache_dir
from coe_local.prepare import say_to_stderr
from coe_local.stack import registry_engines
from coe_local.supervisor import DEFAULT_START_TIMEOUT_S, EngineStartError
from gateway.registry import RegistryError, load_registry
from gateway.settings import add_server_flags, settings_from_args

EXAMPLE_QUESTION = "How do I reverse a list in Python?"


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so `finally` blocks stop the engines as they do on Ctrl-C."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def usage_banner(base_url: str, needs_key: bool) -> str:
    """What to paste to talk to the stack: a curl line and an `openai` SDK snippet."""
    key = "YOUR_KEY" if needs_key else "none"
    auth = f" -H 'Authorization: Bearer {key}'" if needs_key else ""
    body = (
        '{"model": "auto", "stream": true, "messages": '
        f'[{{"role": "user", "content": "{EXAMPLE_QUESTION}"}}]}}'
    )
    return "\n".join(
        [
            f"CoE gateway ready: {base_url}",
            "  curl:",
            f"    curl -N {base_url}/chat/completions -H 'Content-Type: application/json'{auth} -d '{body}'",
            "  python (openai SDK):",
            f"    from openai import OpenAI; client = OpenAI(base_url={base_url!r}, api_key={key!r})",
            f"    stream = client.chat.completions.create(model='auto', stream=True, "
            f"messages=[{{'role': 'user', 'content': {EXAMPLE_QUESTION!r}}}])",
            "    for chunk in stream:",
            "        if chunk.choices: print(chunk.choices[0].delta.content or '', end='', flush=True)",
        ]
    )


def announce_when_serving(
    base_url: str, needs_key: bool, started: float, timeout_s: float = 120.0
) -> threading.Thread:
    """A daemon thread that prints the banner once the gateway answers (it starts inside run_server)."""

    def watch() -> None:
        deadline = time.monotonic() + timeout_s
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                try:
                    client.get(f"{base_url}/models")
                except httpx.HTTPError:
                    time.sleep(0.5)
                    continue
                say_to_stderr(f"stack up in {time.monotonic() - started:.0f} s")
                print(usage_banner(base_url, needs_key), flush=True)
                return

    thread = threading.Thread(target=watch, name="coe-banner", daemon=True)
    thread.start()
    return thread


def run_up(args: argparse.Namespace) -> int:
    """The `coe up` handler."""
    from gateway.server import run_server

    started = time.monotonic()
    cache_dir = args.cache_dir or default_cache_dir()
    try:
        if args.experts is None:
            raise RegistryError("coe up needs --experts: a registry whose experts have `launch` sections")
        registry = load_registry(args.experts)
        settings = settings_from_args(args)
        with (
            sigterm_as_exit(),
            registry_engines(registry, cache_dir, cache_dir / "logs", timeout_s=args.engine_timeout),
        ):
            say_to_stderr(f"engines ready in {time.monotonic() - started:.0f} s; starting the gateway")
            host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
            announce_when_serving(
                f"http://{host}:{settings.port}/v1", settings.api_keys_file is not None, started
            )
            return run_server(settings)
    except (RegistryError, EnginePlanError, ModelPrepareError, EngineStartError) as exc:
        print(f"coe up: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def add_up_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `coe up`."""
    up = subparsers.add_parser("up", help="start the local engines of a profile, then serve the gateway")
    add_server_flags(up)
    up.add_argument(
        "--cache-dir",
        type=Path,
        help="prepared models and engine logs (default $COE_CACHE_DIR or ~/.cache/coe)",
    )
    up.add_argument(
        "--engine-timeout",
        type=float,
        default=DEFAULT_START_TIMEOUT_S,
        help="seconds an engine may take to answer (default %(default)s)",
    )
    up.set_defaults(handler=run_up)
