"""Data: labelled datasets and prediction files, read into pandas. A new format is a module here."""

from ondevice_audit.data.interface import DataError, LabelledFiles
from ondevice_audit.data.manifest import read_manifest, select_split
from ondevice_audit.data.predictions import Predictions, read_predictions

__all__ = ["DataError", "LabelledFiles", "Predictions", "read_manifest", "read_predictions", "select_split"]
