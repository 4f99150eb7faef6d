"""Valuation engine: embed → match (FAISS) → value (Eq. 5–6)."""

from gmv.valuation.api import Valuation, valuate
from gmv.valuation.embedders import build_embedder
from gmv.valuation.matchers import MatcherConfig, MatchResult, match
from gmv.valuation.value import credit, values_from_matches

__all__ = ["Valuation", "valuate", "build_embedder", "MatcherConfig", "MatchResult", "match", "credit",
           "values_from_matches"]
