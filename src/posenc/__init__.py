"""posenc: positional encodings for Transformers, derived from scratch.

The helper library of the course. One file per idea; every notebook imports from here.
"""

from posenc.runtime import device, seed_everything

__all__ = ["device", "seed_everything"]
__version__ = "0.1.0"
