"""Columnar physics on awkward and numpy arrays: four-vector arithmetic, jet column blocks, the
object and event selection, and truth matching. Pure functions, no I/O."""
