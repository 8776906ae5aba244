"""nntransfer: reproducible transfer-learning experiments on PyTorch, DataJoint and nnfabrik.

Importing the package opens no database connection; only ``nntransfer.tables`` does.
"""

import logging

from nntransfer.database import apply_nnfabrik_fixes

__version__ = "0.1.0"

apply_nnfabrik_fixes()
logging.getLogger(__name__).addHandler(logging.NullHandler())
