"""ssdcore.bench: the side-by-side benchmark (ssdcore bench), its plot and prompt sets."""
