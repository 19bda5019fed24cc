"""Export: turn a trained Keras model into deployable TFLite and ONNX files, with metadata embedded."""
