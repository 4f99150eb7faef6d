"""Valuation engine: embed → match (FAISS) → value (Eq. 5–6), with the methods as composable objects."""

from gmv.valuation.api import Valuation, valuate
from gmv.valuation.embed import embed_chunks, embed_source, store_for
from gmv.valuation.embedders import build_embedder
from gmv.valuation.matchers import MatcherConfig, MatchResult, match
from gmv.valuation.methods import Evidence, GANLeaks, GMValuator, KNNCount, MethodResult, Valuator, build_method
from gmv.valuation.precomputed import EmbeddingSet, load_embeddings
from gmv.valuation.store import EmbeddingStore
from gmv.valuation.value import auto_tau, credit, values_from_matches

__all__ = ["Valuation", "valuate", "build_embedder", "MatcherConfig", "MatchResult", "match", "credit",
           "values_from_matches", "auto_tau", "Evidence", "GANLeaks", "GMValuator", "KNNCount", "MethodResult",
           "Valuator", "build_method", "embed_source", "embed_chunks", "store_for", "EmbeddingStore", "EmbeddingSet",
           "load_embeddings"]
