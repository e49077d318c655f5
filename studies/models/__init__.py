"""Reader studies: a study over a cohort, each reader's assignment of trials, their responses.

Truth (kind, label) lives on Case and never leaves the server for a scored trial; readers
see Assignment and Trial tokens only. One response per reader and case is a database
constraint, not a view's promise.
"""

from studies.models.pairing import CasePair
from studies.models.reading import (
    AnswerLocked,
    Assignment,
    Case,
    Progress,
    Response,
    Trial,
    validate_answer,
)
from studies.models.study import Call, Study, StudyQuerySet, new_seed, new_token

__all__ = [
    "AnswerLocked",
    "Assignment",
    "Call",
    "Case",
    "CasePair",
    "Progress",
    "Response",
    "Study",
    "StudyQuerySet",
    "Trial",
    "new_seed",
    "new_token",
    "validate_answer",
]
