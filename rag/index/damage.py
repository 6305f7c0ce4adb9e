"""What a process killed while Chroma writes a vector index can leave, and how to get past it.

Chroma keeps a collection's records (ids, text, metadata) in its SQLite file, written in transactions,
and each vector index (HNSW) in a folder of its own, written in place. A kill during that write can cut
the index's id map short (`index_metadata.pickle`): Chroma then fails every read and write of the
collection. The records are safe, so the index can be embedded again from them
(rag.index.store.ChunkStore.rebuild_vectors, rag.index.integrity.recover).
"""

from __future__ import annotations

import shutil
from pathlib import Path

REBUILD_KEY = "rag:rebuilding"  # collection metadata: True while its records are embedded again into a new index


def marked(client, name: str) -> bool:
    """Whether collection `name` carries the mark of a rebuild that began and has not finished (REBUILD_KEY)."""
    return bool((client.get_collection(name, embedding_function=None).metadata or {}).get(REBUILD_KEY))


def unreadable(collection) -> str:
    """Chroma's error when it cannot load `collection`'s vector index, else "".

    A process killed while Chroma writes the index's files (its id map, `index_metadata.pickle`, cut short)
    leaves a collection whose every read and write fails ("Error creating hnsw segment reader: Error
    deserializing pickle file"); its records (text, metadata) are safe in Chroma's SQLite file.
    """
    from chromadb.errors import InternalError

    try:
        collection.count()
    except InternalError as exc:
        if "hnsw" in str(exc).lower():
            return str(exc)
        raise
    return ""


def set_aside(client, collection) -> list[Path]:
    """Move the folder of `collection`'s vector index out of Chroma's way ("<segment id>.unreadable"), so that
    Chroma starts an empty index and reads the records again; the folders moved. Only an embedded client keeps
    the folder here: for a Chroma server, nothing is moved (the server's own data folder holds it)."""
    import sqlite3
    from contextlib import closing

    settings = client.get_settings()
    if not settings.is_persistent or not settings.persist_directory:
        return []
    root = Path(settings.persist_directory)
    try:  # Chroma 1.x's catalogue: which segment (folder) holds the collection's vectors
        with closing(sqlite3.connect(root / "chroma.sqlite3")) as db:
            segments = [row[0] for row in db.execute(
                "SELECT id FROM segments WHERE collection = ? AND scope = 'VECTOR'", (str(collection.id),))]
    except sqlite3.Error:  # another layout: nothing is moved (the caller says what to do)
        return []
    moved = []
    for segment in segments:
        folder = root / segment
        if folder.is_dir():
            aside = root / f"{segment}.unreadable"
            shutil.rmtree(aside, ignore_errors=True)
            folder.rename(aside)
            moved.append(aside)
    return moved
