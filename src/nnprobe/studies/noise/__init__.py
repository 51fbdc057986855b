"""Why does noise land in one class? ResNet-18s and the mislabel baseline CNNs probed with images
without content: predictions, feature geometry, the bias, out-of-distribution scores, clutter."""
