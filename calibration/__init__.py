"""Pure computation from raw counts to a person's own zones; profile files."""

from calibration.compute import suggest_pacer, thresholds_from
from calibration.core import KINDS, calibrate
from calibration.errors import CalibrationRefused
from calibration.measures import Baseline, BreathFigures, ContractionRep, DropRep
from calibration.profiles import (
    DEFAULT_PERSON,
    SCHEMA,
    SCHEMA_VERSION,
    Profile,
    SensorId,
    check_person,
    default_profiles,
    latest_profile,
    list_profiles,
    load_profile,
    save_profile,
)
from calibration.result import CalibrationResult
from calibration.steps import BreathData, BreathMark, StepKind, StepSegment
from calibration.units import FIELD_RANGES, Conversion, conversion_for

__all__ = [
    "DEFAULT_PERSON",
    "FIELD_RANGES",
    "KINDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "Baseline",
    "BreathData",
    "BreathFigures",
    "BreathMark",
    "CalibrationRefused",
    "CalibrationResult",
    "ContractionRep",
    "Conversion",
    "DropRep",
    "Profile",
    "SensorId",
    "StepKind",
    "StepSegment",
    "calibrate",
    "check_person",
    "conversion_for",
    "default_profiles",
    "latest_profile",
    "list_profiles",
    "load_profile",
    "save_profile",
    "suggest_pacer",
    "thresholds_from",
]
