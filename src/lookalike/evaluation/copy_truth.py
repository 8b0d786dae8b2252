"""What counts as finding the original of an edited copy in `lookalike eval --copies`.

The ground truth names an original and its group (another size, a recolour, a variant). Two
more kinds of hit are as right, and are found here exactly, owing nothing to the search they
judge: an image whose pixels are the copy's own (the copy *is* it), and a palette swap of the
original that a set without groups leaves unlabelled (`Truth`). Figures that trust the labels
alone count them apart (`LABELLED`). `is_twin` finds, by the verifier's own pixel comparison,
wrong hits that are themselves a copy of the original (a mirror twin, a recolour).
"""

from __future__ import annotations

from lookalike.pictures import palette_signature


def is_twin(library, record, *, original_id: int | None = None, image=None) -> bool:
    """Whether a wrongly tiered hit is a copy of the query's original (an indexed image, or
    the held-out `image` itself) by its pixels: its mirror image, a recolour. Judged where
    either picture is small (pixel_match); larger pairs count as not."""
    from lookalike.search import MIN_SIDE, indexed_image, is_pixel_copy

    if original_id is not None:
        image = indexed_image(library, original_id)
    other = indexed_image(library, record.id)
    if image is None or other is None or min(*image.size, *other.size) >= MIN_SIDE:
        return False
    return is_pixel_copy(image, other)


LABELLED = ("original", "group", "same picture")


class Truth:
    """Which hits count as found for a query, and why (the first that holds):
    - "original": the image the copy was made from;
    - "group": an image of its ground-truth group (another size, a recolour, a variant);
    - "same picture": the original stored twice (other bytes, the same pixels);
    - "query's pixels": an image whose pixels are the copy's own (a flip of one icon that is
      its mirrored twin pixel for pixel): the copy *is* that image as much as an edit of the
      original, and its exact tier is right;
    - "palette swap": the same picture as the original (or held-out query), pixel for pixel, in
      other colours, each colour of one standing for exactly one of the other. The bench-data
      ground truth puts a picture's recolours in its group; a set without groups (rltiles: a
      potion in six colours) leaves them unlabelled, and this finds them. Exact: it owes
      nothing to the search it judges."""

    def __init__(self, library, records: dict, group_of_id: dict):
        self.library, self.records, self.group_of_id = library, records, group_of_id
        self._keys: dict[int, str | None] = {}

    def why(self, record, query, group: str, original_id: int | None = None, *, image=None):
        """Why `record` counts as found for this query (a copy of `original_id`, or the
        held-out `image`), or None."""
        if record.id == original_id:
            return "original"
        if group and group in self.group_of_id.get(record.id, ()):
            return "group"
        original = self.records.get(original_id)
        if original is not None and same_picture(record, original):
            return "same picture"
        if query.pixel_hash is not None and record.pixel_hash == query.pixel_hash:
            return "query's pixels"
        size = (original.width, original.height) if original is not None else image.size
        if (record.width, record.height) == size:  # else no swap: not decoded
            mine = self._key_of(original_id) if image is None else recolour_key(image)
            if palette_swap(mine, self._key_of(record.id)):
                return "palette swap"
        return None

    def _key_of(self, image_id: int) -> str | None:
        if image_id not in self._keys:
            from lookalike.search import indexed_image  # OpenCV: loaded when verification is

            image = indexed_image(self.library, image_id)
            self._keys[image_id] = None if image is None else recolour_key(image)
        return self._keys[image_id]


def recolour_key(image) -> str | None:
    """The key a picture shares with its palette swaps and nothing else (palettes.palette_key:
    its pixels, each replaced by the rank of its colour, so one colour for each colour both
    ways), or None for a picture of one colour or of more than 256."""
    signature = palette_signature(image)
    return signature.split()[0] if signature else None


def palette_swap(a: str | None, b: str | None) -> bool:
    """Two pictures (their `recolour_key`s) that are one picture in other colours, pixel for
    pixel, the same size; the same picture counts too."""
    return a is not None and a == b


def same_picture(a, b) -> bool:
    """Two catalog images of one picture (a data set may hold the same tile twice)."""
    return a.sha256 == b.sha256 or (a.pixel_hash is not None and a.pixel_hash == b.pixel_hash)
