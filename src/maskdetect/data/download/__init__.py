"""Downloading data sets: the catalogue, resumable checked transfers, safe zip extraction.

`download_maskedface_net` and `download_ffhq` fetch a whole data set into a folder; `CATALOG` says
where each one lives and which links a human must paste. Every failure of a file is a `DownloadError`.
"""

from maskdetect.data.download.archive import DamagedArchiveError, UnsafeArchiveError
from maskdetect.data.download.catalog import CATALOG, DatasetInfo, dataset_info, format_catalog
from maskdetect.data.download.datasets import (
    DownloadCancelled,
    DownloadReport,
    download_ffhq,
    download_maskedface_net,
    parse_url_args,
)
from maskdetect.data.download.transfer import ChecksumError, DownloadError, NotEnoughSpaceError

__all__ = [
    "CATALOG",
    "ChecksumError",
    "DamagedArchiveError",
    "DatasetInfo",
    "DownloadCancelled",
    "DownloadError",
    "DownloadReport",
    "NotEnoughSpaceError",
    "UnsafeArchiveError",
    "dataset_info",
    "download_ffhq",
    "download_maskedface_net",
    "format_catalog",
    "parse_url_args",
]
