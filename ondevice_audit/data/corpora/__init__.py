"""Corpora as they ship, read into the canonical manifest (``datasets import FORMAT ROOT``).

Formats: ``mswc``, ``common-voice``, ``speech-commands`` (audio), ``utkface``, ``fairface`` (images), and
the generic ``folder`` / ``image-folder`` (one folder per label, groups CSV) and ``manifest`` (clean a
manifest CSV). Each module's docstring documents its layout, the exact columns read and how values are
normalised; ``values`` documents the gender and age spellings written. A new corpus is a module with a
``CorpusAdapter`` subclass, added to ``registry.ADAPTERS``.

Audio is decoded by soundfile (libsndfile; MP3 needs libsndfile >= 1.1.0, Opus >= 1.0.29), never ffmpeg.
"""

from ondevice_audit.data.corpora.interface import CorpusAdapter, ImportResult, Problem, default_out, write_manifest
from ondevice_audit.data.corpora.registry import ADAPTERS, get_adapter

__all__ = ["ADAPTERS", "CorpusAdapter", "ImportResult", "Problem", "default_out", "get_adapter", "write_manifest"]
