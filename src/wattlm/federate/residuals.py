"""Top-k error-feedback residuals on disk, one file per client and round, so that a resumed
run gives each client the residual it had after the checkpointed round.

A client that finishes round ``r`` writes ``client-<partition>-round-<r>.npz`` (numpy
arrays, never pickle) atomically: a write cut short leaves no file under that name, only a
``.tmp-*`` sibling that is never read. The server sends round ``r`` only after it has
checkpointed round ``r − 1``, so a client starting round ``r`` with nothing in memory (a
resumed run) reads its newest residual of a round *before* ``r`` and drops any of round
``r`` or later: those were written by a round that never finished.

Example:
    >>> import tempfile, pathlib, numpy as np
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = save_residual(d, 0, 1, {"w": np.array([0.5, -1.0], np.float32)})
    >>> _ = save_residual(d, 0, 2, {"w": np.zeros(2, np.float32)})  # round 2 never finished
    >>> rnd, arrays = load_residual(d, 0, before=2)
    >>> rnd, arrays["w"].tolist()
    (1, [0.5, -1.0])
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np

from wattlm._files import atomic_path
from wattlm.errors import WattlmError

Arrays = dict[str, np.ndarray]
_NAME = re.compile(r"^client-(\d+)-round-(\d+)\.npz$")


def residual_path(folder: Path, partition: int, rnd: int) -> Path:
    """Where client ``partition``'s residual after round ``rnd`` lives.

    Example:
        >>> residual_path(Path("r"), 3, 7).name
        'client-3-round-7.npz'
    """
    return Path(folder) / f"client-{int(partition)}-round-{int(rnd)}.npz"


def stored_rounds(folder: Path, partition: int | None = None) -> dict[int, list[int]]:
    """Rounds with a residual on disk, ascending, per partition (only ``partition`` if given).

    Example:
        >>> import tempfile, pathlib
        >>> stored_rounds(pathlib.Path(tempfile.mkdtemp()) / "none")
        {}
    """
    out: dict[int, list[int]] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for path in folder.iterdir():
        m = _NAME.match(path.name)
        if m and (partition is None or int(m.group(1)) == partition):
            out.setdefault(int(m.group(1)), []).append(int(m.group(2)))
    return {p: sorted(r) for p, r in sorted(out.items())}


def save_residual(folder: Path, partition: int, rnd: int, residual: Arrays) -> Path:
    """Write client ``partition``'s residual after round ``rnd`` (atomically); its path.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> save_residual(d, 1, 4, {"w": np.ones(1, np.float32)}).name
        'client-1-round-4.npz'
    """
    buf = io.BytesIO()
    np.savez(buf, **{k: np.ascontiguousarray(v) for k, v in residual.items()})
    target = residual_path(folder, partition, rnd)
    with atomic_path(target) as tmp:
        tmp.write_bytes(buf.getvalue())
    return target


def load_residual(folder: Path, partition: int, *, before: int) -> tuple[int, Arrays] | None:
    """Client ``partition``'s newest residual of a round ``< before`` as ``(round, arrays)``,
    or ``None`` when it has none.

    Example:
        >>> import tempfile, pathlib
        >>> load_residual(pathlib.Path(tempfile.mkdtemp()), 0, before=5) is None
        True
    """
    rounds = [r for r in stored_rounds(folder, partition).get(partition, []) if r < before]
    if not rounds:
        return None
    path = residual_path(folder, partition, rounds[-1])
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as err:
        raise WattlmError(
            f"cannot read the top-k residual {path}: {err}",
            hint="delete that file to restart this client's residual at zero",
        ) from None
    return rounds[-1], arrays


def prune_residuals(folder: Path, *, kept_round: int, partition: int | None = None) -> list[Path]:
    """Delete residuals no resume can need: per client, every one of a round ``≤ kept_round``
    except the newest (a client that sat out rounds keeps its last one). Later rounds are
    left alone. Returns the deleted paths.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for r in (1, 2, 3):
        ...     _ = save_residual(d, 0, r, {"w": np.zeros(1, np.float32)})
        >>> [p.name for p in prune_residuals(d, kept_round=2)]
        ['client-0-round-1.npz']
    """
    gone = []
    for part, rounds in stored_rounds(folder, partition).items():
        old = [r for r in rounds if r <= kept_round][:-1]
        for r in old:
            path = residual_path(folder, part, r)
            path.unlink(missing_ok=True)
            gone.append(path)
    return gone


def drop_unfinished(folder: Path, *, after: int, partition: int | None = None) -> list[Path]:
    """Delete residuals of rounds ``> after`` (written by rounds that never finished).
    Returns the deleted paths.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = save_residual(d, 2, 5, {"w": np.zeros(1, np.float32)})
        >>> [p.name for p in drop_unfinished(d, after=4)]
        ['client-2-round-5.npz']
    """
    gone = []
    for part, rounds in stored_rounds(folder, partition).items():
        for r in rounds:
            if r > after:
                path = residual_path(folder, part, r)
                path.unlink(missing_ok=True)
                gone.append(path)
    return gone
