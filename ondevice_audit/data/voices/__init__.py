"""Text-to-speech engines that speak the synthetic keyword corpora (espeak-ng is run directly by ``synth_kws``)."""
