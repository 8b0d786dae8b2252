"""Catalog queries for searching, filtering and exporting (mixed into `Catalog`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import numpy as np


class CatalogQueries:
    """Read-only queries over `self.conn` that serve search filters, vector stores and
    `lookalike export`; kept apart from the write path in store.py."""

    def filter_ids(self, filters) -> np.ndarray:
        """Ids of images with a vector that match `filters` (a search.Filters): any of their
        places may satisfy the place conditions."""
        where, args = ["i.status IN ('embedded', 'indexed')"], []
        if filters.licence:
            where.append("instr(lower(coalesce(p.licence, '')), lower(?)) > 0")
            args.append(filters.licence)
        if filters.author:
            where.append("instr(lower(coalesce(p.author, '')), lower(?)) > 0")
            args.append(filters.author)
        if filters.site:
            where.append(
                "(instr(lower(p.source), lower(?)) > 0"
                " OR instr(lower(coalesce(p.page_url, '')), lower(?)) > 0)"
            )
            args += [filters.site, filters.site]
        if filters.format:
            where.append("upper(i.format) = upper(?)")
            args.append(filters.format)
        if filters.min_width:
            where.append("i.width >= ?")
            args.append(filters.min_width)
        if filters.min_height:
            where.append("i.height >= ?")
            args.append(filters.min_height)
        rows = self.conn.execute(
            "SELECT DISTINCT i.id FROM images i JOIN places p ON p.image_id = i.id WHERE "
            + " AND ".join(where),
            args,
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def sizes(self, ids: Iterable[int]) -> dict[int, tuple[int, int]]:
        """{id: (width, height)} of the images among `ids` whose size is known."""
        wanted = [int(i) for i in ids]
        found: dict[int, tuple[int, int]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.conn.execute(
                f"SELECT id, width, height FROM images WHERE id IN ({','.join('?' * len(chunk))})"
                " AND width IS NOT NULL AND height IS NOT NULL",
                chunk,
            ).fetchall()
            found.update((i, (w, h)) for i, w, h in rows)
        return found

    def index_attributes(self, ids: Iterable[int]) -> list[dict]:
        """What a vector store keeps beside each vector for filtering: licence, site (the host
        of the first URL place, or "local"), format, width and height."""
        records = self.images(ids)
        out = []
        for image_id in ids:
            record = records.get(int(image_id))
            if record is None:
                out.append({})
                continue
            licence = next((p.licence for p in record.places if p.licence), "")
            site = "local"
            for place in record.places:
                url = place.page_url or place.source
                if "://" in url:
                    site = url.split("://", 1)[1].split("/", 1)[0]
                    break
            out.append(
                {
                    "licence": licence,
                    "site": site,
                    "format": record.format or "",
                    "width": record.width or 0,
                    "height": record.height or 0,
                }
            )
        return out

    def export_rows(self) -> Iterator[dict]:
        """One dict per place (images that failed before any place was recorded have none)."""
        cursor = self.conn.execute(
            "SELECT i.id, i.sha256, i.byte_size, i.width, i.height, i.format, i.status, i.error,"
            " i.model, p.source, p.member, p.page_url, p.title, p.author, p.licence, p.tags"
            " FROM images i JOIN places p ON p.image_id = i.id ORDER BY i.id, p.id"
        )
        names = [d[0] for d in cursor.description]
        for row in cursor:
            record = dict(zip(names, row))
            record["tags"] = json.loads(record["tags"]) if record["tags"] else []
            yield record
