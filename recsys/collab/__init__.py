"""Step 3 of the flow: the user tower (implicit ALS/BPR), fold-in for new users, content -> CF projection."""
from recsys.collab.als import CollabModel as CollabModel
from recsys.collab.foldin import fold_in as fold_in
from recsys.collab.project import ContentProjection as ContentProjection
