"""Step 1 of the flow: catalog and interactions, validated, from CSV, Parquet, MovieLens or synthetic."""
from recsys.data.ids import IdMap as IdMap
from recsys.data.loaders import load_catalog as load_catalog
from recsys.data.loaders import load_interactions as load_interactions
from recsys.data.validate import validate_catalog as validate_catalog
from recsys.data.validate import validate_interactions as validate_interactions
