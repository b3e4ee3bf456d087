"""Energy meters, timing, statistics and the hardware/software context of a run."""
