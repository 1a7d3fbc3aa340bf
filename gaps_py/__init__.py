"""gaps_py: a pure-Python (numpy + numba) replacement for the GAPS programs LDIF calls.

One module per GAPS program (msh2msh, msh2df, msh2pts, scn2img, conf2img, grd2msh), each a documented
library function plus a CLI (`python -m gaps_py.<program>`) that takes the GAPS flag spellings LDIF uses.
File formats (`.grd`, binary `.sdf`, `.pts`, `.cam`, `.conf`, 16-bit PNG, 4x4 text matrices) are read and
written byte-compatibly by `gaps_py.io`. Numba kernels live in private modules; each has a slow numpy twin
that the tests compare it with.
"""
