"""The HTTP client module: ``httpx2`` (what recent ``openai`` releases use), else ``httpx``.

Example:
    >>> import pytest; _ = pytest.importorskip("openai")
    >>> hasattr(http_client_module(), "AsyncClient")
    True
"""

from __future__ import annotations

from typing import Any

from wattlm.errors import WattlmError


def http_client_module() -> Any:
    """``httpx2`` or ``httpx``, whichever is installed; WattlmError when neither is."""
    try:
        import httpx2 as httpx
    except ImportError:
        try:
            import httpx  # type: ignore[no-redef]
        except ImportError:
            raise WattlmError(
                "wattlm serve needs an HTTP client (httpx)", hint='pip install "wattlm[serve]"'
            ) from None
    return httpx
