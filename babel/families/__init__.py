"""Stage 3, families: language similarity, clustering, permutation/Mantel tests, distances, LAPE."""
