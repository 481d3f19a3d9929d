"""The build layer: plan each layer, write it, run the worker pool, assemble the image."""
