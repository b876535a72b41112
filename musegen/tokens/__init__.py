"""Tokens: Score <-> token ids (`tokenizer`), which ids may come next (`grammar`), and the
fill-in-the-middle arrangement of bars for infilling (`infill`)."""
