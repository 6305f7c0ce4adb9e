"""What ingest writes and search reads: the vector store, the sentence view, BM25, the manifest, retrieval."""
