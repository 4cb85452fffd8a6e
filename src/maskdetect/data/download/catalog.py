"""Where each downloadable data set lives, what it weighs, its licence, and which links need a human.

Kept in code so that `maskdetect data download --list` and the downloader agree on one truth.
Neither MaskedFace-Net nor FFHQ has a stable direct link: both sit on cloud drives whose links are
made for browsers, so the user pastes them (MaskedFace-Net) or points at an index file (FFHQ).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """One downloadable data set and how to get it.

    Attributes:
        name: the name the CLI takes (`maskdetect data download NAME DEST`).
        title: what the data set is, in a few words.
        home: the page that hosts the links and describes the data.
        licence: the licence terms, in short.
        size: how large the download is.
        how_to_get_links: what the user must do by hand before downloading.
        example: a command line that downloads it.
    """

    name: str
    title: str
    home: str
    licence: str
    size: str
    how_to_get_links: str
    example: str


CATALOG: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            name="maskedface-net",
            title="MaskedFace-Net: synthetic masks on FFHQ faces; CMFD (correctly masked, 67,193) and "
            "IMFD (incorrectly masked, 69,823), 1024x1024 JPEG",
            home="https://github.com/cabani/MaskedFace-Net",
            licence="CC BY-NC-SA 4.0 (non-commercial; train your own models, not a shipped one)",
            size="about 39 GB as zip archives (CMFD and IMFD, split into several zips)",
            how_to_get_links="The archives are on OneDrive / Google Drive; their links are made for a "
            "browser. Open the home page, follow its download links, copy each archive's direct "
            "download URL (for Google Drive: https://drive.usercontent.google.com/download?id=FILE_ID"
            "&confirm=t) and pass it with --url (repeatable; NAME.zip=URL names the file) or list them, "
            "one 'URL [NAME]' per line, in a file given with --urls-file.",
            example="maskdetect data download maskedface-net data/maskedface-net --urls-file links.txt "
            "--jobs 2",
        ),
        DatasetInfo(
            name="ffhq",
            title="FFHQ: 70,000 aligned faces (Flickr), no masks: a source of uncovered head shots",
            home="https://github.com/NVlabs/ffhq-dataset",
            licence="images under their own Creative Commons licences as collected by NVIDIA; "
            "the data set itself CC BY-NC-SA 4.0",
            size="images1024x1024: 89 GB (PNG); thumbnails128x128: 1.95 GB (PNG)",
            how_to_get_links="Download ffhq-dataset-v2.json (255 MB) from the Google Drive folder linked on "
            "the home page, then pass it (a local path or an http URL) with --json. It lists every file's "
            "URL, size and md5; choose --kind thumbnails or images, and --limit N for a subset. "
            "If Google Drive refuses the per-file links, put the files on a mirror and give --base-url "
            "(file_path is appended to it).",
            example="maskdetect data download ffhq data/ffhq --json ffhq-dataset-v2.json --kind thumbnails "
            "--limit 5000 --jobs 4",
        ),
    )
}


def dataset_info(name: str) -> DatasetInfo:
    """Look up a data set by name.

    Raises:
        ValueError: the name is unknown; the message lists the known ones.

    >>> dataset_info("ffhq").home
    'https://github.com/NVlabs/ffhq-dataset'
    """
    try:
        return CATALOG[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; choose one of: {', '.join(CATALOG)}") from None


def format_catalog() -> str:
    """The catalogue as plain text, for `maskdetect data download --list`.

    >>> "maskedface-net" in format_catalog()
    True
    """
    blocks = []
    for info in CATALOG.values():
        blocks.append(
            f"{info.name}\n"
            f"  what:     {info.title}\n"
            f"  home:     {info.home}\n"
            f"  licence:  {info.licence}\n"
            f"  size:     {info.size}\n"
            f"  links:    {info.how_to_get_links}\n"
            f"  example:  {info.example}"
        )
    return "\n\n".join(blocks)
