"""Image reading, channel composition and atomic file writing."""
