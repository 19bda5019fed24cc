"""Front-ends: file -> model input. Add a new input kind as a module with a ``Frontend`` subclass."""

from ondevice_audit.frontend.interface import (
    AUDIO_FACTOR_FIELDS,
    CHUNK_FILES,
    AudioFrontendSpec,
    Frontend,
    FrontendBatch,
    FrontendError,
    FrontendSpec,
    ImageFrontendSpec,
    MicroFrontendSpec,
    SampleError,
    spec_from_dict,
)


def build_frontend(spec: FrontendSpec) -> Frontend:
    """The front-end that implements ``spec``."""
    if isinstance(spec, ImageFrontendSpec):
        from ondevice_audit.frontend.image import ImageFrontend

        return ImageFrontend(spec)
    if isinstance(spec, MicroFrontendSpec):
        from ondevice_audit.frontend.micro import MicroFrontend

        return MicroFrontend(spec)
    from ondevice_audit.frontend.audio import AudioFrontend

    return AudioFrontend(spec)


__all__ = [
    "AUDIO_FACTOR_FIELDS",
    "CHUNK_FILES",
    "AudioFrontendSpec",
    "Frontend",
    "FrontendBatch",
    "FrontendError",
    "FrontendSpec",
    "ImageFrontendSpec",
    "MicroFrontendSpec",
    "SampleError",
    "build_frontend",
    "spec_from_dict",
]
