"""Evaluation dates of moving targets (docs/design.md §6): the run tag that carries the date, and the cache salt.

`reevaluation_schedule` stamps each run it requests with its date; `generations` reads it back. A moving target
(an API alias whose weights change) puts the date into its requests' cache keys, so it is really asked again on
each date; a pinned model keeps its cached answers whatever the date.
"""

import datetime
from typing import Mapping

EVALUATION_DATE_TAG = "warmth/evaluation_date"


def evaluation_date(run_tags: Mapping[str, str]) -> str:
    """The run's evaluation date: stamped by reevaluation_schedule, else today (UTC)."""
    return run_tags.get(EVALUATION_DATE_TAG) or datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def cache_salt(moving_target: bool, evaluated_on: str) -> str:
    return f"evaluation_date={evaluated_on}" if moving_target else ""
