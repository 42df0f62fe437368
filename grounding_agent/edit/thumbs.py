"""A contact sheet: one frame per kept segment (its middle frame), labelled with its source timecodes."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from grounding_agent.edit.paths import IMAGE_SUFFIXES, check_output
from grounding_agent.edit.plan import EditPlan
from grounding_agent.errors import EditError
from grounding_agent.io import atomic_path

_LABEL_PX = 22
_MIN_TILE_W = 320  # room for the caption "#12  00:00:00:00 - 00:00:00:00"


def middle_frames(plan: EditPlan, *, max_pixels: int = 320 * 180) -> list[np.ndarray]:
    """The middle frame of each kept segment, (H, W, 3) uint8."""
    from grounding_agent.media.decode import sample_frames

    grid, out = plan.grid, []
    for seg in plan.kept:
        t = float(grid.starts_s[(seg.start_frame + seg.end_frame - 1) // 2])
        frames = sample_frames(
            plan.video,
            max_frames=1,
            start_s=t,
            end_s=min(t + 1e-3, plan.video.duration_s),
            max_pixels=max_pixels,
        )
        out.append(frames.pixels[0])
    return out


def contact_sheet(plan: EditPlan, path: str | Path, *, columns: int = 4, max_pixels: int = 320 * 180) -> Path:
    """Write a JPEG / PNG grid of kept segments' middle frames, each captioned "#i  start - end" (SMPTE).

    Raises:
        EditError: nothing kept, or a suffix that is not an image. OutputError: unwritable path.
    """
    from PIL import Image, ImageDraw, ImageFont

    check_output(path, plan.video.path, suffixes=IMAGE_SUFFIXES)
    if plan.keeps_nothing:
        raise EditError(f"{path}: the edit keeps nothing, so there are no frames to show")
    tiles = [Image.fromarray(t) for t in middle_frames(plan, max_pixels=max_pixels)]
    if tiles[0].width < _MIN_TILE_W:
        size = (_MIN_TILE_W, round(tiles[0].height * _MIN_TILE_W / tiles[0].width))
        tiles = [t.resize(size, Image.Resampling.BILINEAR) for t in tiles]
    w, h = tiles[0].size
    cols = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    sheet = Image.new("RGB", (cols * w, rows * (h + _LABEL_PX)), "black")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=14)
    for i, (tile, seg) in enumerate(zip(tiles, plan.kept, strict=True)):
        x, y = (i % cols) * w, (i // cols) * (h + _LABEL_PX)
        sheet.paste(tile, (x, y))
        label = f"#{i + 1}  {plan.grid.timecode(seg.start_frame)} - {plan.grid.timecode(seg.end_frame)}"
        draw.text((x + 4, y + h + 3), label, fill="white", font=font)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG" if tmp.suffix.lower() == ".png" else "JPEG", quality=90)
    return Path(path)
