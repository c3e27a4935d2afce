"""Stage 4, pruning: keep-masks from frequencies, FLOPs, perplexity and throughput."""
