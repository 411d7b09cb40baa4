"""Tools on a trained model: feature extraction, fill-mask, sizes, pictures."""
