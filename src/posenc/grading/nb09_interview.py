"""Graders for notebook 09 · Interview drill: the seven drills reuse the graders of the
notebooks that teach them, under their own names so `make grade` lists them here."""

from __future__ import annotations

from posenc.grading import nb10_modern  # registers the exercises drills 6 and 7 reuse
from posenc.grading.core import REGISTRY, Exercise

NOTEBOOK = "09_interview_drill"
DRILLS = {
    "drill_sinusoidal_encoding": "sinusoidal_encoding",
    "drill_apply_rope": "apply_rope",
    "drill_alibi_slopes": "alibi_slopes",
    "drill_t5_relative_bucket": "t5_relative_bucket",
    "drill_ntk_scaled_base": "ntk_scaled_base",
    **nb10_modern.DRILLS_FOR_09,  # drill_apply_partial_rope, drill_mrope_position_ids
}

for drill, source in DRILLS.items():
    if drill not in REGISTRY:
        origin = REGISTRY[source]
        REGISTRY[drill] = Exercise(drill, NOTEBOOK, origin.make_cases, origin.off_limits)
