"""Image reading, channel composition, atomic file writing, output folders written as one set, strict
JSON, memory estimates and deferred Ctrl-C (see the modules)."""
