"""Fail fast, with directions, when the Hugging Face Hub is needed but cannot be reached.

Without a network, ``load_dataset`` and ``from_pretrained`` retry for half a minute and end in a
stack trace. ``require_hub`` probes the endpoint once (a few seconds at most) and raises a
:class:`GlueInputError` that says how to run from local files instead.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

from .errors import GlueInputError

OFFLINE_HELP = (
    "To run offline, point the script at local files: --data_dir DIR (a classic glue_data/ folder "
    "holding <TASK>/train.tsv and dev.tsv, e.g. ../shared/data/glue) or --train_file/--validation_file "
    "(CSV or JSON), and --model_name_or_path LOCAL_FOLDER (a folder with config.json, weights and "
    "tokenizer files). Copies already in the Hugging Face cache work with HF_HUB_OFFLINE=1."
)


def hub_offline() -> bool:
    """True when the user switched the Hub off (``HF_HUB_OFFLINE=1``): only cached copies are used."""
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in {"1", "true", "yes", "on"}


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub's endpoint opens within ``timeout`` seconds.

    Behind a proxy a direct connection proves nothing, so the probe is skipped (True).
    """
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return True
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(what: str) -> None:
    """Raise a helpful :class:`GlueInputError` if ``what`` needs the Hub and the Hub is unreachable.

    With ``HF_HUB_OFFLINE=1`` nothing is probed: the libraries then read their cache and fail fast.
    """
    if not hub_offline() and not hub_reachable():
        raise GlueInputError(f"{what} needs the Hugging Face Hub, which cannot be reached. {OFFLINE_HELP}")


def hub_failure(what: str, error: Exception) -> GlueInputError:
    """The error to raise when a Hub download of ``what`` failed (offline mode, missing cache, no network)."""
    return GlueInputError(f"could not load {what} from the Hugging Face Hub or its cache ({error}). {OFFLINE_HELP}")
