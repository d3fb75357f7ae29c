"""Shared by the report tests: a written plot is a real PNG with something drawn on it."""

from __future__ import annotations

from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_size: tuple[int, int] = (300, 300)) -> None:
    """A PNG matplotlib reads back, at least `min_size` pixels (width, height), not one flat colour."""
    from matplotlib import image

    path = Path(path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert path.stat().st_size > 1024, f"{path} is too small to hold a plot"
    pixels = image.imread(path)
    height, width = pixels.shape[:2]
    assert width >= min_size[0] and height >= min_size[1], f"{path}: {width}x{height} pixels"
    assert pixels[..., :3].std() > 0.01, f"{path} is blank"
    assert not list(path.parent.glob("*.part")), "a half-written file was left behind"
