"""Model loading (HF folder, hub id, GGUF file, asset name), fingerprints and saving."""
