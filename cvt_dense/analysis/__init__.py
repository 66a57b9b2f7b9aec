"""Analysis tools' logic: whole-model complexity, benchmarking, training curves and
attention maps (the command-line wrappers are in ``tools/analysis``)."""
