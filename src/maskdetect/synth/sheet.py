"""A contact sheet: many small images on one PNG, each with a caption, for a quick look."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageOps


def contact_sheet(
    tiles: list[tuple[Image.Image, str]], columns: int = 8, tile: int = 128, caption: int = 14
) -> Image.Image:
    """Lay images out in a grid, each fitted into a `tile` square with its caption under it.

    >>> contact_sheet([(Image.new("RGB", (10, 20)), "a")], columns=4).size
    (128, 142)
    """
    if not tiles:
        raise ValueError("contact sheet needs at least one image")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * (tile + caption)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for n, (image, text) in enumerate(tiles):
        x, y = (n % columns) * tile, (n // columns) * (tile + caption)
        fitted = ImageOps.pad(image.convert("RGB"), (tile, tile), color=(255, 255, 255))
        sheet.paste(fitted, (x, y))
        draw.text((x + 2, y + tile + 1), text[: tile // 6], fill=(0, 0, 0))
    return sheet
