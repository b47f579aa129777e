"""The gRPC session service: frames in, tracked boxes out, per-stream state in the session store."""
