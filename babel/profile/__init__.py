"""Stage 2, profiles: per-language expert activation counts (cached) and expert classes."""
