"""Inference backends: one interface, the embedded TorchScript backend and the Triton backend."""
