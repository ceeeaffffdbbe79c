"""The representations family: images -> self-supervised (SimCLR, margin contrastive, CPC) and
reference (supervised, random, raw pixels) encoders -> frozen features -> linear probe, kNN,
mutual-information bound, soft-F1 probe, receptive fields (see family.py)."""
