"""prefdelta: what does a preference pair actually teach?

Build preference pairs from generators of different capability, judge every trace
along five reasoning-quality dimensions, select pairs, train with DPO/KTO and
evaluate in-domain and out-of-domain.
"""

import logging

__version__ = "0.1.0"

# The library convention: modules log through logging.getLogger(__name__) and only a
# program decides where records go (the CLI does, in prefdelta.logs). Without this, a
# program that imports prefdelta and configures nothing would get warnings on stderr
# from logging's last-resort handler.
logging.getLogger(__name__).addHandler(logging.NullHandler())
