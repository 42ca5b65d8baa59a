"""The ranking stage: candidate sources, features of each (user, candidate) pair, and a learned
LightGBM ranker trained on the shop's own later events."""
