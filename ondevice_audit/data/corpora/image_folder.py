"""Images in one folder per label, groups from a CSV keyed by file or subject (the ``speaker`` column).

The layout and options are the audio ``folder`` format's (see ``folder``), for .jpg .jpeg .png .bmp .gif
.webp .tif .tiff files. For people's photos, ``speaker`` is the person (or capture session): several photos
of one person are not independent, and reports resample by it.
"""

from __future__ import annotations

from ondevice_audit.data.corpora.files import IMAGE_SUFFIXES
from ondevice_audit.data.corpora.folder import FolderAdapter

__all__ = ["ImageFolderAdapter"]


class ImageFolderAdapter(FolderAdapter):
    name = "image-folder"
    modality = "image"
    summary = "one folder per label (<label>/**/<image>), groups from --groups CSV keyed by file or speaker"
    suffixes = IMAGE_SUFFIXES
