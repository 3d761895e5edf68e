"""Product pictures for the demo shop, drawn with Pillow: a coloured shape on a shaded background.

Drawing is deterministic (a picture's seed drives every random choice), so the same catalogue always serves
the same bytes, and products that share a picture share its bytes exactly.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from crawlfleet.demo.catalogue import CONTENT_TYPES, Catalogue, Picture, Product

EXIF_ORIENTATION = 0x0112
ROTATE_CLOCKWISE = 6  # EXIF orientation: turn the stored pixels 90 degrees clockwise to display them
CORRUPT_KEEP = 0.4  # the corrupt image keeps this share of a valid JPEG's bytes


def draw(picture: Picture) -> Image.Image:
    """The picture, upright, at its display size."""
    rng = random.Random(picture.seed)
    width, height = picture.size
    r, g, b = picture.colour
    light = tuple(min(255, c + (255 - c) * 3 // 4) for c in (r, g, b))
    image = Image.linear_gradient("L").resize((width, height)).rotate(rng.uniform(0, 360))
    background = Image.new("RGB", (width, height), light)
    shade = Image.new("RGB", (width, height), (r // 3 + 60, g // 3 + 60, b // 3 + 60))
    canvas = Image.composite(shade, background, image.point(lambda v: v // 3))
    pen = ImageDraw.Draw(canvas)
    for _ in range(rng.randint(6, 14)):  # speckles, so no two pictures hash alike
        x, y, radius = rng.randrange(width), rng.randrange(height), rng.randint(4, min(width, height) // 10)
        pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(r // 2 + 100, g // 2 + 100, b // 2 + 100))
    cx, cy = width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
    size = min(width, height) * rng.uniform(0.28, 0.38)
    _shape(pen, picture.shape, cx, cy, size, picture.colour)
    return canvas


def _shape(pen: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, size: float, fill: tuple[int, int, int]) -> None:
    outline = tuple(c // 2 for c in fill)
    box = (cx - size, cy - size, cx + size, cy + size)
    if shape == "circle":
        pen.ellipse(box, fill=fill, outline=outline, width=6)
    elif shape == "ellipse":
        pen.ellipse((cx - size * 1.4, cy - size * 0.8, cx + size * 1.4, cy + size * 0.8), fill=fill, outline=outline)
    elif shape == "square":
        pen.rectangle(box, fill=fill, outline=outline, width=6)
    else:
        sides = {"triangle": 3, "diamond": 4, "hexagon": 6}[shape]
        pen.regular_polygon((cx, cy, size), sides, fill=fill, outline=outline)


def encode(image: Image.Image, fmt: str, *, rotated: bool = False) -> bytes:
    """``image`` in ``fmt``; ``rotated`` stores a JPEG sideways with an EXIF orientation that turns it back."""
    out = io.BytesIO()
    if rotated:
        exif = Image.Exif()
        exif[EXIF_ORIENTATION] = ROTATE_CLOCKWISE
        image.transpose(Image.Transpose.ROTATE_90).save(out, "JPEG", quality=85, exif=exif.tobytes())
    elif fmt == "JPEG":
        image.save(out, "JPEG", quality=85)
    elif fmt == "PNG":
        image.save(out, "PNG", optimize=True)
    else:
        image.save(out, "WEBP", quality=80, method=4)
    return out.getvalue()


def product_image(product: Product) -> bytes:
    """The bytes served for one product's image (truncated for the product whose image is corrupt)."""
    data = encode(draw(product.picture), product.picture.format, rotated=product.rotated)
    return data[: int(len(data) * CORRUPT_KEEP)] if product.corrupt_image else data


def render_images(catalogue: Catalogue) -> dict[str, tuple[str, bytes]]:
    """Path -> (content type, bytes) of every product image; shared pictures are encoded once."""
    encoded: dict[int, bytes] = {}
    images: dict[str, tuple[str, bytes]] = {}
    for product in catalogue.products:
        if product.picture_owner not in encoded:
            encoded[product.picture_owner] = product_image(catalogue.products[product.picture_owner])
        images[product.image_path] = (CONTENT_TYPES[product.picture.format], encoded[product.picture_owner])
    return images
