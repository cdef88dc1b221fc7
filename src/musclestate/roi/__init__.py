"""roi stage."""
