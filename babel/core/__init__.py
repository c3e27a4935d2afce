"""Infrastructure: paths, atomic artifacts, leaf configs, parameter checks, the notebook runner."""
