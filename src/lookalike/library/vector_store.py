"""Where a library keeps its vectors for search (mixed into `Library`): which store, loading
its index and bringing it into step with the catalog, rebuilding and saving it, and moving the
vectors to another store.

The catalog is the source of truth and the index a cache of it: the catalog commits vectors
before the index is saved, and every load reconciles the two, so a kill at any moment costs at
most the uncommitted batch.
"""

from __future__ import annotations

import numpy as np

from lookalike.index import (
    ANN_THRESHOLD,
    FaissIndex,
    StoreConfig,
    VectorIndex,
    confirm,
    copy_all,
    open_milvus,
    replay,
)

from .layout import LibraryError


class LibraryVectorStore:
    """The vector store and its index, kept in step with `self.catalog`. `Library` supplies
    the rest: root, catalog, writable, embedder (the dimension of an empty library), index_path,
    and `_index`, the index once loaded."""

    # -- which store --------------------------------------------------------------------------

    @property
    def store(self) -> StoreConfig:
        return StoreConfig.from_meta(self.catalog)

    def _check_store(self, requested: StoreConfig | None) -> None:
        if self.catalog.get_meta("store") is None:
            if self.writable:
                with self.catalog.transaction():
                    (requested or StoreConfig("faiss")).to_meta(self.catalog)
            return
        recorded = self.store
        if requested is not None and not requested.same_place(recorded):
            raise LibraryError(
                f"the library at {self.root} keeps its vectors in {recorded.describe()}, not "
                f"{requested.describe()}; move them with `lookalike migrate --to ...`"
            )

    # -- the index ----------------------------------------------------------------------------

    def add_to_index(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add committed vectors to the index (with what a filtering store keeps beside)."""
        index = self.index
        attributes = self.catalog.index_attributes(ids) if index.filters_pushdown else None
        index.add(ids, vectors, attributes)

    def detach_index(self) -> VectorIndex:
        """Hand the loaded index over to a longer-lived owner (closing the library leaves it
        open)."""
        index = self.index
        self._index = None
        return index

    def set_index(self, index: VectorIndex) -> None:
        """Use an already-loaded index (the server shares one across requests)."""
        self._index = index

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = self._load_index()
        return self._index

    def _load_index(self) -> VectorIndex:
        store = self.store
        if store.kind == "milvus":
            index = open_milvus(store, self.catalog.dim or self.embedder.dim)
            if self.writable:
                replay(self, index)  # what a crash may have kept from Milvus
            return index
        dim = self.catalog.dim or None
        index = None
        if self.index_path.exists():
            try:
                index = FaissIndex.load(self.index_path)
            except Exception:
                index = None  # unreadable: rebuilt below from the catalog, which has every vector
        if index is None or (dim and index.dim != dim) or self._index_is_stale():
            return self.rebuild_index(save=self.writable)
        self.reconcile(index)
        return index

    def _index_is_stale(self) -> bool:
        """The saved index holds another model's vectors (`reindex --model` swapped the
        catalog's and stopped before saving the new index); older libraries record nothing."""
        saved_for = self.catalog.get_meta("index_model_id")
        return saved_for is not None and saved_for != self.catalog.get_meta("model_id")

    def reconcile(self, index: VectorIndex) -> None:
        """Make the index hold exactly the catalog's vectors (after a crash, or a reader that
        opened while a writer was between committing vectors and saving the index)."""
        in_index = index.ids()
        in_catalog = self.catalog.vector_ids()
        extra = np.setdiff1d(in_index, in_catalog, assume_unique=True)
        missing = np.setdiff1d(in_catalog, in_index, assume_unique=True)
        if len(extra):
            index.remove(extra)
        if len(missing):
            ids, vectors = self.catalog.vectors(missing)
            index.add(ids, vectors)
        if self.writable:
            # Statuses follow the *saved* index: rows it lacks go back to 'embedded', and rows
            # left 'embedded' by a crash right after a save are in fact indexed.
            unmarked = np.intersect1d(self.catalog.ids_with_status("embedded"), in_index)
            if len(missing) or len(unmarked):
                with self.catalog.transaction():
                    self.catalog.mark_embedded(missing)
                    self.catalog.mark_indexed(unmarked)

    def rebuild_index(
        self, *, save: bool = True, ann_threshold: int = ANN_THRESHOLD
    ) -> VectorIndex:
        """A fresh index of the right kind from every vector in the catalog."""
        store = self.store
        if store.kind == "milvus":
            index = self.index
            index.drop()
            # the catalog's dim: after `reindex --model` the old collection's is another one
            index = open_milvus(store, self.catalog.dim or index.dim)
            copy_all(self, index)
            self._index = index
            if save and self.writable:
                confirm(self, index)
            return index
        chunks = list(self.catalog.iter_vectors())
        dim = self.catalog.dim or self.embedder.dim
        if chunks:
            ids = np.concatenate([c[0] for c in chunks])
            vectors = np.concatenate([c[1] for c in chunks])
        else:
            ids, vectors = np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        index = FaissIndex.build(ids, vectors, ann_threshold=ann_threshold)
        self._index = index
        if save and self.writable:
            self.save_index()
        return index

    def save_index(self) -> None:
        """Persist the index, then mark every row it holds as indexed.

        In that order: a crash between the two leaves rows 'embedded' that the saved index
        already has, which the next open notices and fixes; the reverse order could mark rows
        indexed that no saved index holds.
        """
        assert self.writable, "save_index needs a library opened for writing"
        index = self.index
        if self.store.kind == "milvus":
            confirm(self, index)
            return
        if index.needs_rebuild():
            index = self.rebuild_index(save=False)
        index.save(self.index_path)
        ids = index.ids()
        with self.catalog.transaction():
            model_id = self.catalog.get_meta("model_id")
            if model_id and self.catalog.get_meta("index_model_id") != model_id:
                self.catalog.set_meta("index_model_id", model_id)
            self.catalog.mark_indexed(ids)
            self.catalog.clear_pending_deletes(np.setdiff1d(self.catalog.pending_deletes(), ids))

    def migrate(self, target: StoreConfig) -> int:
        """Copy every vector into another store and make it the library's; returns how many.
        The old store is left as it was (delete a Milvus collection by hand once satisfied)."""
        assert self.writable, "migrate needs a library opened for writing"
        dim = self.catalog.dim or self.embedder.dim
        if target.kind == "milvus":
            index = open_milvus(target, dim)
            copied = copy_all(self, index)
        else:
            index = None
            copied = len(self.catalog.vector_ids())
        with self.catalog.transaction():
            target.to_meta(self.catalog)
        if index is None:
            self._index = None
            self.rebuild_index(save=True)
        else:
            self._index = index
            confirm(self, index)
        return copied
