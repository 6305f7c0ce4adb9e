"""Embedders: `factory` builds the configured one, a file per backend (sentence_transformers, onnx, fake).

`cache` keeps each text's vector once; `files` finds the model folder and makes its ONNX exports.
"""
