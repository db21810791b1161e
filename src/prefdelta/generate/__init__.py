"""Generation backends behind one interface (see :mod:`prefdelta.generate.base`)."""
