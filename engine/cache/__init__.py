"""The content-addressed layer cache: blob store, cache-key records, stat memo, maintenance."""
