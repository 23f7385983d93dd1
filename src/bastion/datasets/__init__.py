"""Loaders for the public data sets (``bastion data fetch`` downloads them into the data folder) and their
canonical splits."""

from __future__ import annotations

from pathlib import Path


class DataNotFoundError(FileNotFoundError):
    """A data set is missing; the message is one line naming what is missing, where it looked and how to get it."""


def data_dir() -> Path:
    """The data folder: the ``data_dir`` setting (``$BASTION_DATA_DIR``), else ``shared/data`` beside the
    checkout, else ``~/.bastion/data``."""
    from bastion.settings import setting

    return Path(setting("data_dir"))


def require(root: Path, dataset: str, *files: str) -> Path:
    """``root/dataset`` when it holds ``files`` (default: every data file the manifest lists for it), else
    :class:`DataNotFoundError`."""
    from bastion.settings import data_dir_origin

    folder = root / dataset
    if not files:
        from bastion.datasets.fetch import load_manifest

        listed = load_manifest().get(dataset, {}).get("files", {})
        files = tuple(f for f in listed if not f.upper().startswith(("README", "ORIGINAL_")))
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more file(s)" if len(missing) > 1 else ""
        raise DataNotFoundError(
            f"data set {dataset} is missing: no {folder / missing[0]}{more} (data folder {root}, "
            f"{data_dir_origin()}); run `bastion data fetch` (or `--only {dataset}`) or set BASTION_DATA_DIR")
    return folder
