"""Stage 0, data: the language table, corpus sources, the profiling/evaluation split, chunking."""
