"""Generation: `MuseGen` and `load` (muse), the sampling loop (sample), its filters (filters),
keys and scales (theory), infilling (infill) and live call and response (live)."""
