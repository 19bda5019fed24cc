"""Corpus formats by name, as ``datasets import FORMAT`` takes them."""

from __future__ import annotations

from ondevice_audit.data.corpora.common_voice import CommonVoiceAdapter
from ondevice_audit.data.corpora.fairface import FairFaceAdapter
from ondevice_audit.data.corpora.folder import FolderAdapter
from ondevice_audit.data.corpora.image_folder import ImageFolderAdapter
from ondevice_audit.data.corpora.interface import CorpusAdapter
from ondevice_audit.data.corpora.manifest import ManifestAdapter
from ondevice_audit.data.corpora.mswc import MSWCAdapter
from ondevice_audit.data.corpora.speech_commands import SpeechCommandsAdapter
from ondevice_audit.data.corpora.utkface import UTKFaceAdapter
from ondevice_audit.errors import UsageError

__all__ = ["ADAPTERS", "get_adapter"]

ADAPTERS: dict[str, CorpusAdapter] = {
    adapter.name: adapter
    for adapter in (
        MSWCAdapter(),
        CommonVoiceAdapter(),
        SpeechCommandsAdapter(),
        FolderAdapter(),
        ManifestAdapter(),
        UTKFaceAdapter(),
        FairFaceAdapter(),
        ImageFolderAdapter(),
    )
}


def get_adapter(name: str) -> CorpusAdapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise UsageError(f"unknown corpus format {name!r}; choose from {', '.join(ADAPTERS)}") from None
