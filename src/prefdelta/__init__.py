"""prefdelta: what does a preference pair actually teach?

Build preference pairs from generators of different capability, judge every trace
along five reasoning-quality dimensions, select pairs, train with DPO/KTO and
evaluate in-domain and out-of-domain.
"""

__version__ = "0.1.0"
