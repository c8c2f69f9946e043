"""One module per system; each has ``run(database, seconds, keys) -> {workload: ops/s}``."""
