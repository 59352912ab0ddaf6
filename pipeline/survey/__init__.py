"""Survey files: a typed model of ``surveys/<name>.yaml``, its loader and its human error messages.

A survey is a grid (the Cartesian product of lists) over *settings*, plus settings held fixed, times
seeds. Every setting can be fixed or a grid axis. The model is the single source of truth: the JSON
schema (``pipeline/schemas/survey.schema.json``) and the field reference (``surveys/README.md``) are
generated from it by ``python -m pipeline.survey export-schema`` and a test fails when they are stale.

Validation happens once, here, before anything runs: unknown keys, wrong types, out-of-range or
non-finite numbers, empty or repeated grid values, a setting both fixed and on the grid, too many
runs, and the cross-setting rules of :data:`CONDITIONAL_SETTINGS` and :data:`CELL_RULES`, checked in
every grid cell. Every error is a :class:`SurveyError` whose message names the file, the field, the
value and what is allowed, one problem per line.

Conventions of resolved settings (:meth:`Survey.cells`): a setting that does not apply in a cell
(``leak`` with ``activation: relu``, ``teacher_*`` without a teacher, ``interval_*`` without
``input_distribution: interval``, ``init_scale`` / ``init_width_exponent`` with ``xavier``) resolves
to ``None`` there, so that it cannot change the run's seeds or its stored coordinates.

The package's modules, by responsibility: :mod:`pipeline.survey.settings` (the catalogue of
settings), :mod:`pipeline.survey.conditional` (settings that apply only in some cells),
:mod:`pipeline.survey.cell_rules` (cross-setting rules), :mod:`pipeline.survey.rules` (checking both in every
cell), :mod:`pipeline.survey.spec` (the survey models), :mod:`pipeline.survey.loading` (YAML loading and error
messages), :mod:`pipeline.survey.reference` (the generated schema and field reference) and
:mod:`pipeline.survey.cli` (``python -m pipeline.survey``).
"""

from pipeline.survey.cell_rules import CELL_RULES
from pipeline.survey.cell_rules import Problem as Problem
from pipeline.survey.cli import main
from pipeline.survey.conditional import CONDITIONAL_SETTINGS
from pipeline.survey.conditional import Conditional as Conditional
from pipeline.survey.loading import SurveyError, load_survey, parse_survey
from pipeline.survey.reference import REFERENCE_PATH, SCHEMA_PATH, export_schema, reference_text, schema_text
from pipeline.survey.settings import SETTING_GROUPS, SETTING_KINDS, SETTING_NAMES
from pipeline.survey.settings import FixedSettings as FixedSettings
from pipeline.survey.settings import GridSettings as GridSettings
from pipeline.survey.spec import (
    MAX_RUNS,
    NAME_PATTERN,
    SCHEMA_VERSION,
    Classify,
    Execution,
    Seeds,
    Survey,
    SurveySpec,
)

__all__ = [
    "CELL_RULES",
    "CONDITIONAL_SETTINGS",
    "MAX_RUNS",
    "NAME_PATTERN",
    "SCHEMA_PATH",
    "REFERENCE_PATH",
    "SCHEMA_VERSION",
    "SETTING_GROUPS",
    "SETTING_KINDS",
    "SETTING_NAMES",
    "Classify",
    "Execution",
    "Seeds",
    "Survey",
    "SurveyError",
    "SurveySpec",
    "export_schema",
    "load_survey",
    "main",
    "parse_survey",
    "reference_text",
    "schema_text",
]
