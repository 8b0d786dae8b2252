"""The catalog's SQLite schema, versioned with `PRAGMA user_version`.

Each entry of MIGRATIONS moves the schema up by one version and runs in one transaction, so a
library written by an older lookalike is upgraded in place when it is opened, and a library from
a newer lookalike is refused rather than misread. Never edit a released migration: append one.

Tables:
- meta: key/value facts about the library (model, dimension, created).
- images: one row per distinct content (sha256 of the bytes). Its id is the vector id in the
  index. `status` records how far the pipeline got: decoded -> embedded -> indexed, or failed
  (with `error`).
- vectors: the embedding of each image (float16), so the index can always be rebuilt.
- places: every place an image was found (a file, an archive member, a URL), with what the
  place says about it (page, title, author, licence, tags) and the file's size and mtime, which
  let a re-index skip unchanged files without reading them.
- images.pixel_hash (v3): a hash of the decoded pixels, so that the same picture saved as other
  bytes (another PNG compression, BMP vs PNG) is still an exact match.
- pending_deletes (v4): ids deleted from the catalog whose removal the vector store has not
  confirmed yet. Written in the same transaction as the delete, cleared once the store has
  applied it, replayed after a crash: a remote store (Milvus) never keeps a deleted vector.
- staged_vectors (v5): vectors of another model, made by `lookalike reindex --model` beside the
  ones in use, committed batch by batch so an interrupted re-embedding resumes; they replace
  `vectors` in one transaction once every image has one (ingest/reembedding.py).
- images.tiny (v6): the image's tiny picture (index/tiny.py), 144 bytes, a second way to find
  candidates for `search --verify`. Images indexed before v6 get theirs from
  `lookalike check --repair` or `reindex --model`, which read them again; until then they
  are found as before.
- vectors.detail, staged_vectors.detail (v7): the model's details of each image (float16;
  embed/base.py), which the ranking learned from the library maps with the vector. Libraries
  of effnet-lite0@3 have none (`lookalike reindex --model effnet-lite0` makes them).
- images.palette_key (v8): the picture's palette-canonical key and a digest of its pixels
  (tuning/recolours.py; '' for a picture with none: a photo, one colour), from which tune knows how
  many of the library's pictures are palette swaps of others. NULL: not looked at (indexed
  before v8; `reindex --model` fills it in).
- pixel hashes of the colours shown (v9; decode.pixel_hash): before, a palette picture was
  hashed by its palette and indices, so the same sprite saved as an RGB PNG was no exact match.
  The migration records the last image id hashed the old way (meta
  `stored_form_pixel_hashes_up_to`); an RGB picture's hash is the same either way, the others
  are made again by `lookalike check --repair`, which then drops the key.
- containers (v2): archives read so far, with their size and mtime, so an unchanged archive is
  not opened again, and its outcome (members found, or why it could not be read).
- downloads (v2): the download cache, keyed by the URL fetched: where the body is stored and
  how the fetch went, and `source`, the URL as places store it (decoded), to find a place's
  cached file again. A URL downloaded once is never fetched again.
- crawl_queue (v2): one row per URL per crawl step (listing, page, file), pending / done /
  failed with the error and attempt count, plus what the step learned (JSON), so a crawl
  resumes where it stopped.
"""

from __future__ import annotations

import sqlite3

# meta key: the last image id whose pixel hash predates v9 (the module docstring)
STORED_FORM_HASHES = "stored_form_pixel_hashes_up_to"

MIGRATIONS: list[str] = [
    # version 1
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE images (
        id         INTEGER PRIMARY KEY,
        sha256     TEXT    NOT NULL UNIQUE,
        byte_size  INTEGER NOT NULL,
        width      INTEGER,
        height     INTEGER,
        format     TEXT,
        frames     INTEGER,
        model      TEXT,
        status     TEXT    NOT NULL
                   CHECK (status IN ('decoded', 'embedded', 'indexed', 'failed')),
        error      TEXT,
        created_at REAL    NOT NULL,
        updated_at REAL    NOT NULL
    );
    CREATE INDEX images_by_status ON images (status);
    CREATE TABLE vectors (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        vector   BLOB    NOT NULL
    );
    CREATE TABLE places (
        id            INTEGER PRIMARY KEY,
        image_id      INTEGER NOT NULL REFERENCES images (id) ON DELETE CASCADE,
        source        TEXT    NOT NULL,
        member        TEXT    NOT NULL DEFAULT '',
        page_url      TEXT,
        title         TEXT,
        author        TEXT,
        licence       TEXT,
        tags          TEXT,
        file_size     INTEGER,
        file_mtime_ns INTEGER,
        first_seen    REAL    NOT NULL,
        last_seen     REAL    NOT NULL,
        UNIQUE (source, member)
    );
    CREATE INDEX places_by_image ON places (image_id);
    """,
    # version 2: archives, downloads and crawl queues
    """
    CREATE TABLE containers (
        source     TEXT    PRIMARY KEY,
        file_size  INTEGER,
        file_mtime_ns INTEGER,
        status     TEXT    NOT NULL CHECK (status IN ('done', 'failed')),
        members    INTEGER NOT NULL DEFAULT 0,
        error      TEXT,
        updated_at REAL    NOT NULL
    );
    CREATE TABLE downloads (
        url          TEXT    PRIMARY KEY,
        source       TEXT    NOT NULL,
        path         TEXT,
        status       TEXT    NOT NULL CHECK (status IN ('done', 'failed')),
        http_status  INTEGER,
        content_type TEXT,
        size         INTEGER,
        error        TEXT,
        attempts     INTEGER NOT NULL DEFAULT 0,
        fetched_at   REAL    NOT NULL
    );
    CREATE UNIQUE INDEX downloads_by_path ON downloads (path);
    CREATE INDEX downloads_by_source ON downloads (source);
    CREATE TABLE crawl_queue (
        id         INTEGER PRIMARY KEY,
        crawl      TEXT    NOT NULL,
        step       TEXT    NOT NULL,
        url        TEXT    NOT NULL,
        status     TEXT    NOT NULL DEFAULT 'pending'
                   CHECK (status IN ('pending', 'done', 'failed')),
        error      TEXT,
        attempts   INTEGER NOT NULL DEFAULT 0,
        data       TEXT,
        updated_at REAL    NOT NULL,
        UNIQUE (crawl, step, url)
    );
    CREATE INDEX crawl_queue_by_status ON crawl_queue (crawl, step, status);
    """,
    # version 3: a hash of decoded pixels, for "exact" matches across file formats
    """
    ALTER TABLE images ADD COLUMN pixel_hash TEXT;
    CREATE INDEX images_by_pixel_hash ON images (pixel_hash);
    """,
    # version 4: deletions the vector store has yet to apply (an outbox, for Milvus)
    """
    CREATE TABLE pending_deletes (
        image_id INTEGER PRIMARY KEY
    );
    """,
    # version 5: re-embedding with another model, beside the vectors in use
    """
    CREATE TABLE staged_vectors (
        image_id INTEGER PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
        model    TEXT    NOT NULL,
        vector   BLOB    NOT NULL
    );
    """,
    # version 6: tiny pictures, to find copy candidates for verification by pixels
    """
    ALTER TABLE images ADD COLUMN tiny BLOB;
    """,
    # version 7: details beside the vectors, for the learned ranking
    """
    ALTER TABLE vectors ADD COLUMN detail BLOB;
    ALTER TABLE staged_vectors ADD COLUMN detail BLOB;
    """,
    # version 8: palette keys, to count the library's palette swaps
    """
    ALTER TABLE images ADD COLUMN palette_key TEXT;
    """,
    # version 9: pixel hashes of the colours shown; those of the images already indexed were
    # of how their pixels were stored, and `check --repair` makes them again
    f"""
    INSERT INTO meta (key, value)
    SELECT '{STORED_FORM_HASHES}', CAST(id AS TEXT) FROM images ORDER BY id DESC LIMIT 1;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(RuntimeError):
    pass


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to SCHEMA_VERSION; return the version found before."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"this library's catalog has schema version {found}, newer than this lookalike "
            f"understands ({SCHEMA_VERSION}); upgrade lookalike"
        )
    for version in range(found, SCHEMA_VERSION):
        # executescript() commits first; wrap each step in its own explicit transaction so a
        # failed migration leaves the previous version intact.
        conn.executescript(
            f"BEGIN;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;"
        )
    return found
