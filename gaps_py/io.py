"""Readers and writers for the GAPS file formats LDIF uses, byte-compatible with GAPS.

Owns the grid-to-world convention (see `read_grd`). All binary values are little-endian.
"""

# ---- section: atomic writes, meshes, grids, point files, matrices (owner: gaps-geometry) ----


# ---- section: cameras, configurations, 16-bit images (owner: gaps-render) ----
