"""What the config alone tells about prepared images (for config-time checks of both image
families; the prepared manifest is the truth once the data exists)."""

from __future__ import annotations

#: channels of the built-in sources (a folder's are known once it is prepared)
SOURCE_CHANNELS = {"digits": 1, "fashion_mnist": 1, "cifar10": 3, "cifar100": 3}
#: side in pixels of the built-in sources
SOURCE_SIDE = {"digits": 8, "fashion_mnist": 28, "cifar10": 32, "cifar100": 32}


def image_geometry(section: dict) -> tuple[int | None, int | None]:
    """(channels, side) of the prepared images when the config alone tells (None: a folder source
    without `channels` / `resize`; checked again when the data is read)."""
    data = section["data"]
    return (
        data.get("channels") or SOURCE_CHANNELS.get(data["source"]),
        data.get("resize") or SOURCE_SIDE.get(data["source"]),
    )
