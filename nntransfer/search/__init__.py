"""Searches over a recipe's settings, stored like every other experiment: a :class:`SearchSpace` over one
chain (:mod:`nntransfer.search.space`), run by ``nntransfer search`` (:func:`run_search`) with Optuna, the
study kept beside the steps in the store (:mod:`nntransfer.search.run`)."""

from nntransfer.analysis.searches import search_report, trials_frame
from nntransfer.search.run import SearchResult, load_space, run_search, study_name
from nntransfer.search.space import Choice, IntRange, LogUniform, SearchSpace, Uniform

__all__ = ["Choice", "IntRange", "LogUniform", "SearchResult", "SearchSpace", "Uniform", "load_space", "run_search",
           "search_report", "study_name", "trials_frame"]
