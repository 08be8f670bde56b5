"""ssdcore.engine: the Engine, its config, sampling parameters, outputs, errors and model runners."""
