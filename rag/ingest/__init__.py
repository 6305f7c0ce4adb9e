"""Files to stored chunks: loaders per format, tables, OCR, chunking, the ingest pipeline, uploads, watched folders."""
