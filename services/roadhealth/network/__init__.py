"""The road network's geometry, pure (no I/O): GeoJSON segments and their hashes (geo), map
matching of a window to a segment and chainage (matching), and a window's heading from its
device's neighbouring windows (headings)."""
