"""recsys: a multimodal recommender service."""
__version__ = "0.1.0"
