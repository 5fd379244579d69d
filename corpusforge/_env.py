"""The environment a command runs in: checked where it is used, so that a bad setting is one clear line.

The Hub client reads ``HF_TOKEN``, ``HF_ENDPOINT`` and the proxy variables deep inside
a request; a token with a non-ASCII letter, an endpoint that is not a URL, or a SOCKS
proxy without its extra end there in a traceback. ``check_hub_environment`` looks at
them before anything goes to the network. ``safe_streams`` makes the CLI's output
survive a terminal that cannot encode every character (a latin-1 or ASCII stdout).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from urllib.parse import urlsplit

from .errors import CorpusforgeError

PROXY_VARIABLES = ("ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")


def check_token(token: str | None, error: type[CorpusforgeError] = CorpusforgeError) -> None:
    """A token goes into an HTTP header: ASCII, printable, no spaces (it is never shown)."""
    if token is None:
        return
    if not token.isascii() or not token.isprintable() or any(c.isspace() for c in token):
        source = "HF_TOKEN" if os.environ.get("HF_TOKEN") == token else "the saved Hugging Face token"
        raise error(f"{source} holds a character that is not a printable ASCII letter or digit; a token never does",
                    hint="copy the token again from https://huggingface.co/settings/tokens")


def check_endpoint(error: type[CorpusforgeError] = CorpusforgeError) -> None:
    """HF_ENDPOINT, when set, is an http(s) URL. huggingface_hub parses it when it is imported (by transformers
    and datasets too), so the CLI checks it before any command starts."""
    endpoint = os.environ.get("HF_ENDPOINT")
    if endpoint:
        try:
            url = urlsplit(endpoint)
            ok = url.scheme in ("http", "https") and bool(url.hostname) and (url.port is None or url.port > 0)
        except ValueError:
            ok = False
        if not ok:
            raise error(f"HF_ENDPOINT is not an http(s) URL: {endpoint[:60]!r}",
                        hint="unset it, or set it to a URL such as https://huggingface.co")


def check_hub_environment(error: type[CorpusforgeError] = CorpusforgeError) -> None:
    """HF_ENDPOINT is an http(s) URL, and a SOCKS proxy has the package it needs — or ``error`` says which
    variable is wrong and what to do (values that may hold credentials are never shown)."""
    check_endpoint(error)
    for name in PROXY_VARIABLES:
        value = os.environ.get(name, "")
        if value.lower().startswith("socks") and importlib.util.find_spec("socksio") is None:
            raise error(f"{name} is a SOCKS proxy ({value.split(':', 1)[0]}), which needs the socksio package",
                        hint=f"pip install 'httpx[socks]', or unset {name}")


def safe_streams() -> None:
    """stdout and stderr that cannot encode a character (LANG=C without UTF-8, PYTHONIOENCODING=latin-1)
    write it as a backslash escape instead of failing mid-output."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "").replace("_", "")
        if encoding and not encoding.startswith("utf") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):   # a stream that cannot be reconfigured is left as it is
                pass
