"""switch: a self-hosted programmable voice switch."""

import os as _os

# The media tick's matrix products (in-band DTMF detection) are small and come every 20 ms: a BLAS thread pool
# spins between them and cost 9x the CPU of one thread (0.149 s against 1.378 s of CPU for 500 ticks of 40
# channels). Set before numpy is first imported; worker processes inherit it. An explicit setting wins.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    _os.environ.setdefault(_name, "1")

__version__ = "0.1.0"
