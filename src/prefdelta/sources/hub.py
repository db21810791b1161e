"""Published copies of the benchmarks on a data hub, read through ``datasets``.

Used only when no local data directory is given (``--data-dir`` / ``$PREFDELTA_DATA_DIR``)
and the machine is online. Rows come back as :class:`~prefdelta.sources.base.Record`
objects whose "file" is ``hub:<dataset id>``, so the same column checks and error
messages apply as for a local file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prefdelta.errors import UserError
from prefdelta.sources.base import DATA_DIR_ENV, Record


def hub_records(dataset: str, split: str, config: str | None = None) -> Iterator[Record]:
    """Records of ``dataset`` (hub id) ``split``; a :class:`UserError` when offline or unknown."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets is a core dependency
        raise UserError("reading from the data hub needs the 'datasets' package") from err
    try:
        ds = datasets.load_dataset(dataset, config, split=split)
    except Exception as err:
        raise UserError(
            f"could not load {dataset}{'/' + config if config else ''} split '{split}' from the data hub "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); "
            f"offline, pass --data-dir or set ${DATA_DIR_ENV} to a local mirror"
        ) from None
    where = Path(f"hub:{dataset}")
    for i, row in enumerate(ds):
        yield Record(where, i + 1, dict(row), unit="row")
