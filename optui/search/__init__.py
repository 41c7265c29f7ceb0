"""Random and learning searches over a study's hyperparameter spaces: trial plans and names,
the search's events, scoring, ranking and the samplers that ask for trials.

The service runs a search (optui.service.searches); this package holds its rules. The names
below are its public API; `sampling` (optional samplers) is imported where it is used.
"""

from .events import TrialScored, TrialsPlanned
from .plans import CONFIRM_STREAM, SEARCH_STREAM, TrialPlan, confirm_name, plan_from_row, search_space_of, trial_name
from .ranking import best_trial, rank, rank_confirmations, rank_trials
from .scoring import replicate_objectives, score_unit

__all__ = ["CONFIRM_STREAM", "SEARCH_STREAM", "TrialPlan", "TrialScored", "TrialsPlanned", "best_trial",
           "confirm_name", "plan_from_row", "rank", "rank_confirmations", "rank_trials", "replicate_objectives",
           "score_unit", "search_space_of", "trial_name"]
