"""The demo shop's catalogue: categories and products, generated from a fixed seed.

Everything here is pure data (no I/O, no pixels), so the URL list and the expected outcome of a demo run can be
computed without starting the site. The deliberate oddities are chosen by product index:

- every 4th product (index 3, 7, ...) is rendered by JavaScript in the browser;
- a few products reuse another product's picture (the same bytes under their own URL), so dedupe shows;
- one product's photo is an EXIF-rotated JPEG, one product's image is corrupt;
- one listing links to a product that no longer exists (HTTP 404);
- the home and about pages link to a few other sites (out of a crawl's scope).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = 2024
PER_PAGE = 4
PAGES_PER_CATEGORY = 2
PRODUCTS_PER_CATEGORY = PER_PAGE * PAGES_PER_CATEGORY
JS_EVERY = 4
# Product index -> index of the product whose picture it reuses (its gift set variant).
SHARED_PICTURES = {5: 4, 13: 12, 21: 20}
ROTATED_PRODUCT = 1
CORRUPT_PRODUCT = 10
FEATURED = (0, 2, 8, 16)
BROKEN_PATH = "/product/discontinued-copper-kettle"
# Links to other sites (reserved .example names: nothing real), on the home and about pages: a
# crawl of the shop counts them out of scope and never fetches them.
HOME_OFFSITE_LINKS = (
    ("Our photos", "https://photos.example/crawlfleet-demo-shop"),
    ("Follow us", "https://social.example/crawlfleet-demo-shop"),
    ("The potters' guild", "https://pottery-guild.example/members"),
)
ABOUT_OFFSITE_LINKS = (("Where the clay comes from", "https://clay-supplier.example/"),)
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CONTENT_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}

CATEGORIES = (
    ("teapots", "Teapots", "teapot", "Teapots for one, for two and for the whole table."),
    ("mugs", "Mugs & cups", "mug", "Mugs and cups for every kind of morning."),
    ("kettles", "Kettles", "kettle", "Kettles for the stove, the fire and the camp."),
)
COLOURS = {
    "Cobalt": (0, 71, 171),
    "Saffron": (244, 196, 48),
    "Sage": (135, 169, 107),
    "Terracotta": (204, 78, 52),
    "Plum": (142, 69, 133),
    "Charcoal": (54, 69, 79),
    "Coral": (255, 127, 80),
    "Teal": (0, 128, 128),
    "Ivory": (236, 228, 200),
    "Crimson": (180, 20, 60),
}
STYLES = ("Classic", "Nordic", "Studio", "Rustic", "Tall", "Compact", "Grand", "Everyday", "Heritage", "Modern")
SHAPES = ("circle", "square", "triangle", "diamond", "ellipse", "hexagon")
_SENTENCES = (
    "It is {made} in {material} and finished with a {finish} glaze.",
    "The {part} is shaped to sit {comfort} in the hand.",
    "It holds {volume} millilitres, enough for {occasion}.",
    "Each piece comes out of the kiln a little different, so yours will be one of a kind.",
    "The {colour} glaze {glaze_effect} where it runs thin over the rim.",
    "It is safe in the dishwasher, though it will last longer washed by hand.",
    "We fire it twice, at {temperature} degrees, which makes it hard-wearing and {feel}.",
    "Pair it with anything else from the {category} range.",
    "It weighs {weight} grams when empty.",
)
_FILL = {
    "made": ("thrown on the wheel", "cast from a mould", "built by hand", "pressed"),
    "material": ("stoneware", "porcelain", "earthenware", "speckled clay"),
    "finish": ("matte", "satin", "high-gloss", "crackle"),
    "part": ("handle", "base", "rim", "body"),
    "comfort": ("comfortably", "securely", "lightly", "naturally"),
    "volume": ("250", "350", "600", "1,200"),
    "occasion": ("a quiet morning", "a long afternoon", "friends at the table", "the whole family"),
    "glaze_effect": ("pales", "breaks to brown", "turns almost white", "darkens"),
    "temperature": ("1,200", "1,240", "1,280"),
    "feel": ("smooth to the touch", "pleasantly heavy", "light for its size"),
    "weight": ("320", "450", "610", "780", "940"),
}


@dataclass(frozen=True, kw_only=True)
class Category:
    slug: str
    name: str
    blurb: str

    @property
    def path(self) -> str:
        return f"/category/{self.slug}"

    def page_path(self, page: int) -> str:
        """The listing page's path; page 1 is the category's own path."""
        return self.path if page == 1 else f"{self.path}?page={page}"


@dataclass(frozen=True, kw_only=True)
class Picture:
    """How a product picture is drawn and encoded (see ``coordinator.demo.images``)."""

    format: str  # JPEG, PNG or WEBP
    size: tuple[int, int]  # as displayed (after EXIF orientation)
    colour: tuple[int, int, int]
    shape: str
    seed: int


@dataclass(frozen=True, kw_only=True)
class Product:
    index: int
    slug: str
    sku: str
    name: str
    category: Category
    page: int  # the listing page that lists it
    price_cents: int
    description: tuple[str, ...]  # paragraphs
    picture: Picture  # its own, or the one of the product it shares with
    picture_owner: int  # index of the product that owns the picture (itself unless shared)
    js_rendered: bool
    rotated: bool  # the JPEG is stored sideways with EXIF orientation 6
    corrupt_image: bool

    @property
    def path(self) -> str:
        return f"/product/{self.slug}"

    @property
    def image_path(self) -> str:
        return f"/images/{self.slug}.{EXTENSIONS[self.picture.format]}"

    @property
    def price(self) -> str:
        return f"{self.price_cents // 100}.{self.price_cents % 100:02d}"


@dataclass(frozen=True, kw_only=True)
class Catalogue:
    categories: tuple[Category, ...]
    products: tuple[Product, ...]

    def listing(self, category: Category, page: int) -> list[Product]:
        return [p for p in self.products if p.category == category and p.page == page]

    @property
    def featured(self) -> list[Product]:
        return [self.products[i] for i in FEATURED]


def _paragraphs(rng: random.Random, name: str, noun: str, colour: str, category: str) -> tuple[str, ...]:
    values = {key: rng.choice(options) for key, options in _FILL.items()}
    values.update(colour=colour.lower(), category=category.lower())
    sentences = [s.format(**values) for s in rng.sample(_SENTENCES, 6)]
    intro = f"The {name} is a {noun} from our studio."
    return (" ".join([intro, *sentences[:3]]), " ".join(sentences[3:]))


def _picture(rng: random.Random, index: int, colour: tuple[int, int, int]) -> Picture:
    fmt = "JPEG" if index in (ROTATED_PRODUCT, CORRUPT_PRODUCT) else ("JPEG", "PNG", "WEBP")[index % 3]
    width, height = rng.randint(30, 80) * 10, rng.randint(20, 60) * 10
    if index == ROTATED_PRODUCT:
        width, height = 400, 600  # a portrait photo, stored sideways
    return Picture(format=fmt, size=(width, height), colour=colour, shape=SHAPES[index % len(SHAPES)], seed=index)


def build_catalogue(seed: int = SEED) -> Catalogue:
    """The catalogue: 3 categories of 8 products each, the same for the same seed."""
    rng = random.Random(seed)
    categories = tuple(Category(slug=s, name=n, blurb=b) for s, n, _, b in CATEGORIES)
    nouns = [noun for _, _, noun, _ in CATEGORIES]
    products: list[Product] = []
    colour_names = list(COLOURS)
    for index in range(len(categories) * PRODUCTS_PER_CATEGORY):
        category_index, position = divmod(index, PRODUCTS_PER_CATEGORY)
        owner = SHARED_PICTURES.get(index, index)
        colour = colour_names[(owner * 3 + category_index) % len(colour_names)]
        name = f"{STYLES[position + category_index]} {colour} {nouns[category_index]}"
        price_cents = rng.randint(12, 140) * 100 + rng.choice([0, 50, 90, 95])
        if owner != index:  # a variant of another product, photographed once
            name = f"{products[owner].name} gift set"
            price_cents = products[owner].price_cents + 1500
        own_picture = _picture(rng, index, COLOURS[colour])
        products.append(
            Product(
                index=index,
                slug=name.lower().replace(" ", "-"),
                sku=f"CF-{category_index + 1}{position + 1:02d}-{rng.randint(1000, 9999)}",
                name=name,
                category=categories[category_index],
                page=position // PER_PAGE + 1,
                price_cents=price_cents,
                description=_paragraphs(rng, name, nouns[category_index], colour, categories[category_index].name),
                picture=products[owner].picture if owner != index else own_picture,
                picture_owner=owner,
                js_rendered=index % JS_EVERY == JS_EVERY - 1,
                rotated=index == ROTATED_PRODUCT,
                corrupt_image=index == CORRUPT_PRODUCT,
            )
        )
    return Catalogue(categories=categories, products=tuple(products))
